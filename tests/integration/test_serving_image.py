"""The serving image, built with podman from this checkout's Dockerfile and run: it holds only
what serving imports, runs as non-root on $PORT, predicts what the model predicts, its health
check works, it refuses a model whose sha256 differs, and the release smoke test passes on it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelci.config import load_service_params
from modelci.deploy.errors import DeployError
from modelci.deploy.smoke import smoke_test
from modelci.model_version import Version
from modelci.modelfile import load_model
from modelci.serving.runtime import PROBA_TOLERANCE
from modelci.tags import TAG_SHA256
from tests.container_support import podman, running
from tests.integration.conftest import ServingImage
from tests.process_support import free_port, http_get

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PIPELINE_ONLY = ("dvc", "mlflow", "pandera", "matplotlib", "pyarrow", "pytest")


def test_image_holds_serving_and_none_of_the_pipeline(serving_image: ServingImage) -> None:
    probe = (
        "import importlib.util as u, json, sys; "
        "print(json.dumps([m for m in sys.argv[1:] if u.find_spec(m)]))"
    )
    done = podman(
        "run", "--rm", "--entrypoint", "python", serving_image.tag, "-c", probe,
        "modelci", "uvicorn", "sklearn", *PIPELINE_ONLY,
    )  # fmt: skip
    assert json.loads(done.stdout) == ["modelci", "uvicorn", "sklearn"]
    tools = podman("run", "--rm", "--entrypoint", "sh", serving_image.tag, "-c",
                   "command -v gcc cc make uv git || true")  # fmt: skip
    assert tools.stdout.strip() == ""


@pytest.fixture(scope="module")
def served(serving_image: ServingImage) -> Iterator[tuple[str, int]]:
    """One running container (its id and port) for the tests that only talk to it."""
    # /model tells the runtime's note only in full (the default tells digests and schema)
    with running(serving_image.tag, "--env", "MODELCI_MODEL_INFO=full") as container:
        yield container


def _rows(image: ServingImage, count: int = 20) -> list[dict[str, Any]]:
    params = load_service_params(image.repo / "params.yaml")
    frame = pd.read_parquet(image.repo / "data/prepared/test.parquet")[params.data.features]
    rows: list[dict[str, Any]] = json.loads(frame.head(count).to_json(orient="records"))
    return rows


def _post(port: int, path: str, payload: Any) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local http
        return json.loads(response.read())


def test_container_predicts_what_the_model_predicts_as_non_root(
    serving_image: ServingImage, served: tuple[str, int]
) -> None:
    container, port = served
    rows = _rows(serving_image)
    params = load_service_params(serving_image.repo / "params.yaml")
    model = load_model(serving_image.repo / "models/model.skops", params.trusted_types)
    frame = pd.DataFrame(rows)
    answer = _post(port, "/predict", rows)
    assert answer["model_sha256"] == serving_image.sha256
    invocations = _post(port, "/invocations", {"dataframe_records": rows})
    user = podman("exec", container, "id", "-u").stdout.strip()
    server_users = podman("top", container, "user", "args").stdout
    assert answer["predictions"] == model.predict(frame).tolist()
    assert invocations["predictions"] == answer["predictions"]
    expected = model.predict_proba(frame)
    assert np.allclose(answer["probabilities"], expected, atol=PROBA_TOLERANCE)
    assert int(user) != 0
    serving = [line.split()[0] for line in server_users.splitlines() if "modelci serve" in line]
    assert serving
    assert not set(serving) & {"root", "0"}


def test_container_serves_the_baked_build_time_export(served: tuple[str, int]) -> None:
    """The export stage's models/onnx/ is in the image and matches the model: no conversion at
    start (the slow part of a cold start)."""
    _, port = served
    status, body = http_get(port, "/model", timeout=30)
    assert status == 200
    described = json.loads(body)
    assert described["runtime"] == "onnx"
    assert "converted at start-up" not in described["runtime_note"], described["runtime_note"]


def test_healthcheck_passes_while_serving_and_fails_without_a_server(
    serving_image: ServingImage, served: tuple[str, int]
) -> None:
    assert podman("healthcheck", "run", served[0], check=False).returncode == 0
    # The same image's HEALTHCHECK in a container where nothing listens: unhealthy.
    started = podman("run", "--detach", "--entrypoint", "sleep", serving_image.tag, "60")
    idle = started.stdout.strip()
    try:
        assert podman("healthcheck", "run", idle, check=False).returncode != 0
    finally:
        podman("rm", "--force", "--time", "0", idle, check=False)


def test_container_refuses_a_model_whose_sha256_differs(serving_image: ServingImage) -> None:
    name = f"modelci-test-sha-{free_port()}"
    try:
        done = podman(
            "run", "--name", name, "--init", "--network=host", "--env", f"PORT={free_port()}",
            "--env", f"MODELCI_MODEL_SHA256={'0' * 64}", serving_image.tag,
            check=False, timeout=120,
        )  # fmt: skip
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
    assert done.returncode != 0
    assert "does not match" in done.stderr


def test_release_smoke_test_against_the_container(
    serving_image: ServingImage, served: tuple[str, int]
) -> None:
    url = f"http://127.0.0.1:{served[1]}"
    rows = _rows(serving_image, 2)
    deployed = Version("model", 1, "run", {TAG_SHA256: serving_image.sha256})
    other = Version("model", 2, "run", {TAG_SHA256: "f" * 64})
    notes = smoke_test(url, deployed, rows, attempts=1)
    with pytest.raises(DeployError, match="does not report the deployed model sha256"):
        smoke_test(url, other, rows, attempts=1)
    assert any(serving_image.sha256[:12] in note for note in notes)
    assert any("/invocations: 200 on 2 row(s)" in note for note in notes)

"""The serving image, built with podman from this checkout's Dockerfile, in both variants, and
run: the default (onnx) holds ONNX Runtime and what serving imports and none of scikit-learn,
SciPy, pandas, skops, skl2onnx or onnx, and refuses a model without a verified export, naming the
variant to build; the sklearn variant serves such a model. Both hold none of the pipeline, run as
non-root on $PORT and predict what the model predicts; the health check works, the image refuses
a model whose sha256 differs, and the release smoke test passes on it."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
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
# What the onnx variant leaves out, in the order the probe below lists what it finds.
FALLBACK_ONLY = ("sklearn", "scipy", "pandas", "skops", "skl2onnx", "onnx")


@pytest.fixture(params=["onnx", "sklearn"])
def either_image(request: pytest.FixtureRequest, image_context: Path) -> ServingImage:
    """Each variant of the image in turn (both built once per session from ``image_context``)."""
    name = "serving_image" if request.param == "onnx" else "sklearn_serving_image"
    image: ServingImage = request.getfixturevalue(name)
    return image


def test_each_variant_holds_serving_and_none_of_the_pipeline(either_image: ServingImage) -> None:
    probe = (
        "import importlib.util as u, json, sys; "
        "print(json.dumps([m for m in sys.argv[1:] if u.find_spec(m)]))"
    )
    done = podman(
        "run", "--rm", "--entrypoint", "python", either_image.tag, "-c", probe,
        "modelci", "uvicorn", "onnxruntime", *FALLBACK_ONLY, *PIPELINE_ONLY,
    )  # fmt: skip
    fallback = list(FALLBACK_ONLY) if either_image.variant == "sklearn" else []
    assert json.loads(done.stdout) == ["modelci", "uvicorn", "onnxruntime", *fallback]
    tools = podman("run", "--rm", "--entrypoint", "sh", either_image.tag, "-c",
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


def _assert_predicts_the_model(image: ServingImage, port: int) -> None:
    """``/predict`` and ``/invocations`` answer what the baked model predicts, from it."""
    rows = _rows(image)
    params = load_service_params(image.repo / "params.yaml")
    model = load_model(image.repo / "models/model.skops", params.trusted_types)
    frame = pd.DataFrame(rows)
    answer = _post(port, "/predict", rows)
    assert answer["model_sha256"] == image.sha256
    invocations = _post(port, "/invocations", {"dataframe_records": rows})
    assert answer["predictions"] == model.predict(frame).tolist()
    assert invocations["predictions"] == answer["predictions"]
    expected = model.predict_proba(frame)
    assert np.allclose(answer["probabilities"], expected, atol=PROBA_TOLERANCE)


def test_container_predicts_what_the_model_predicts_as_non_root(
    serving_image: ServingImage, served: tuple[str, int]
) -> None:
    container, port = served
    _assert_predicts_the_model(serving_image, port)
    user = podman("exec", container, "id", "-u").stdout.strip()
    server_users = podman("top", container, "user", "args").stdout
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


def _start_fails(image: ServingImage, *env: str) -> subprocess.CompletedProcess[str]:
    """``podman run`` of ``image`` with ``env`` (NAME=VALUE), expected to exit before serving."""
    name = f"modelci-test-start-{free_port()}"
    try:
        return podman(
            "run", "--name", name, "--init", "--network=host", "--env", f"PORT={free_port()}",
            *(arg for pair in env for arg in ("--env", pair)), image.tag,
            check=False, timeout=120,
        )  # fmt: skip
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_container_refuses_a_model_whose_sha256_differs(serving_image: ServingImage) -> None:
    done = _start_fails(serving_image, f"MODELCI_MODEL_SHA256={'0' * 64}")
    assert done.returncode != 0
    assert "does not match" in done.stderr


# Unpinning the export (the model stays pinned) is how these tests make an export that does not
# verify: the server then will not serve it, as for a missing, stale or tampered one.
UNVERIFIED_EXPORT = "MODELCI_ONNX_SHA256="


def test_the_onnx_variant_refuses_a_model_without_a_verified_export(
    serving_image: ServingImage,
) -> None:
    done = _start_fails(serving_image, UNVERIFIED_EXPORT)
    assert done.returncode != 0
    error = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error) == 1, done.stderr[-2000:]
    assert "the build-time export is not pinned" in error[0]
    assert "scikit-learn and skops are not installed" in error[0]
    assert "--build-arg SERVE_VARIANT=sklearn" in error[0]


def test_the_sklearn_variant_serves_a_model_without_a_verified_export(
    sklearn_serving_image: ServingImage,
) -> None:
    env = ("--env", UNVERIFIED_EXPORT, "--env", "MODELCI_MODEL_INFO=full")
    with running(sklearn_serving_image.tag, *env) as (_, port):
        _assert_predicts_the_model(sklearn_serving_image, port)
        status, body = http_get(port, "/model", timeout=30)
    assert status == 200
    assert "converted at start-up" in json.loads(body)["runtime_note"]


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

"""Serving ``models:/NAME@champion`` from an MLflow registry (a sqlite store in tmp_path):
verification of the artifact's sha256, reload under load without a failed request (admin
endpoint, SIGHUP and alias polling), and a tampered artifact refused at start and on reload."""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelci.serving.exported import export_sha256
from tests.integration.conftest import serve_fails, start_serve
from tests.process_support import ServerProcess, http_get

pytestmark = pytest.mark.integration

NAME = "titanic-serving"
TOKEN = "s3cret-test-token"  # noqa: S105 - a test value
ROW = {
    "gender": "female",
    "age": 30.0,
    "class": "1st",
    "embarked": "Southampton",
    "fare": 80.0,
    "sibsp": 0,
    "parch": 0,
}


@dataclass
class Registry:
    root: Path
    uri: str
    client: Any
    experiment: str
    versions: dict[str, str] = field(default_factory=dict)

    def register(
        self, model_file: Path, sha_tag: str | None = None, alias: str = "champion"
    ) -> str:
        """Log ``model_file`` as model_file/model.skops of a new run, register it, set alias."""
        data = model_file.read_bytes()
        digest = sha_tag or hashlib.sha256(data).hexdigest()
        run_ = self.client.create_run(
            self.experiment,
            tags={"modelci.model_sha256": digest, "modelci.git_commit": "a" * 40},
        )
        staging = self.root / "staging" / run_.info.run_id
        staging.mkdir(parents=True)
        (staging / "model.skops").write_bytes(data)
        self.client.log_artifact(run_.info.run_id, str(staging / "model.skops"), "model_file")
        export = model_file.parent / "onnx"  # the build-time ONNX export, as register logs it
        tags = {"modelci.model_sha256": digest}
        if export.is_dir():
            self.client.log_artifacts(run_.info.run_id, str(export), "onnx")
            onnx_sha256 = export_sha256(export, digest)  # and pins it, as register does
            if onnx_sha256:
                tags["modelci.onnx_sha256"] = onnx_sha256
        self.client.log_metric(run_.info.run_id, "accuracy", 0.8)
        self.client.set_terminated(run_.info.run_id)
        version = self.client.create_model_version(
            NAME,
            source=f"runs:/{run_.info.run_id}/model_file",
            run_id=run_.info.run_id,
            tags=tags,
        )
        if alias:
            self.client.set_registered_model_alias(NAME, alias, version.version)
        return str(version.version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("serving", artifact_location=(root / "art").as_uri())
    client.create_registered_model(NAME)
    return Registry(root, uri, client, experiment)


@pytest.fixture(scope="module")
def second_model(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different model (fewer boosting iterations) trained on the same data."""
    import pandas as pd

    from modelci.config import load_params
    from modelci.modelfile import save_model
    from modelci.pipeline.train import fit

    params = load_params(pipeline_repo / "params.yaml")
    train = params.train.model_copy(
        update={"estimator_params": {**params.train.estimator_params, "max_iter": 20}}
    )
    model = fit(pd.read_parquet(pipeline_repo / "data/prepared/train.parquet"), params.data, train)
    path = tmp_path_factory.mktemp("second") / "model.skops"
    save_model(model, path)
    return path


def start(repo: Path, registry: Registry, *extra: str) -> ServerProcess:
    return start_serve(
        repo,
        "--model",
        f"models:/{NAME}@champion",
        *extra,
        MLFLOW_TRACKING_URI=registry.uri,
        MODELCI_ADMIN_TOKEN=TOKEN,
        MODELCI_MODEL_INFO="full",  # the tests follow the run and commit served
        MODELCI_RELOAD_INTERVAL="0",  # the tests reload back to back
    )


def model_info(port: int) -> dict[str, Any]:
    status, body = http_get(port, "/model")
    assert status == 200
    return dict(json.loads(body))


class Load:
    """Threads sending /predict back to back on keep-alive connections, counting outcomes."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.port = port
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str | None] = set()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        body = json.dumps(ROW).encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            try:
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                with self._lock:
                    if response.status == 200:
                        self.ok += 1
                        self.versions.add(json.loads(payload)["model_version"])
                    else:
                        self.failures.append(f"{response.status} {payload[:200]!r}")
            except (OSError, http.client.HTTPException) as error:
                with self._lock:
                    self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.close()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(60)


def wait_for_version(port: int, version: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if model_info(port)["version"] == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"version {version} not served within {timeout} s")


def admin_reload(port: int, token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/admin/reload", b"", {"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def champion_server(pipeline_repo: Path, registry: Registry) -> Iterator[tuple[ServerProcess, str]]:
    version = registry.register(pipeline_repo / "models/model.skops")
    server = start(pipeline_repo, registry)
    yield server, version
    assert server.stop() == 0, server.output()
    server.cleanup()


def test_serves_the_champion_with_its_lineage(
    champion_server: tuple[ServerProcess, str], pipeline_repo: Path
) -> None:
    server, version = champion_server
    info = model_info(server.port)
    expected = hashlib.sha256((pipeline_repo / "models/model.skops").read_bytes()).hexdigest()
    assert info["version"] == version
    assert info["alias"] == "champion"
    assert info["name"] == NAME
    assert info["sha256"] == expected
    assert info["git_commit"] == "a" * 40
    assert info["metrics"] == {"accuracy": 0.8}
    assert len(info["run_id"]) == 32
    assert info["runtime"] == "onnx"
    assert "exported at build time" in info["runtime_note"]
    onnx_file = pipeline_repo / "models/onnx/model.onnx"
    assert info["onnx_sha256"] == hashlib.sha256(onnx_file.read_bytes()).hexdigest()


def test_admin_reload_needs_the_token(champion_server: tuple[ServerProcess, str]) -> None:
    server, _ = champion_server
    status, body = admin_reload(server.port, token="wrong")  # noqa: S106
    assert status == 401
    assert body["error_code"] == "UNAUTHENTICATED"


def test_reload_under_load_drops_no_request(
    champion_server: tuple[ServerProcess, str], registry: Registry, second_model: Path,
    pipeline_repo: Path,
) -> None:  # fmt: skip
    server, first = champion_server
    with Load(server.port) as load:
        # 1. promote a new version, reload through the authenticated endpoint
        second = registry.register(second_model)
        status, body = admin_reload(server.port)
        assert status == 200, body
        assert body["model"]["version"] == second
        # 2. promote the first model's bytes as a new version, reload on SIGHUP
        third = registry.register(pipeline_repo / "models/model.skops")
        server.signal(signal.SIGHUP)
        wait_for_version(server.port, third)
        time.sleep(0.5)
    assert load.failures == []
    assert load.ok > 20
    assert {first, second, third} <= load.versions
    metrics = http_get(server.port, "/metrics")[1].decode()
    assert 'modelci_model_reloads_total{outcome="ok"}' in metrics


def test_polling_picks_up_a_moved_alias(
    pipeline_repo: Path, registry: Registry, second_model: Path
) -> None:
    registry.register(pipeline_repo / "models/model.skops")
    server = start(pipeline_repo, registry, "--poll-seconds", "0.5")
    try:
        with Load(server.port, threads=2) as load:
            moved = registry.register(second_model)
            wait_for_version(server.port, moved)
        assert load.failures == []
        assert "alias now points at version" in server.output()
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def tampered(
    registry: Registry, pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A version whose model_file artifact was modified after its sha256 was recorded."""
    path = tmp_path_factory.mktemp("tampered") / "model.skops"
    data = bytearray((pipeline_repo / "models/model.skops").read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    genuine = hashlib.sha256((pipeline_repo / "models/model.skops").read_bytes()).hexdigest()
    return registry.register(path, sha_tag=genuine, alias="tampered")


def test_a_tampered_artifact_is_refused_on_reload_and_the_old_model_keeps_serving(
    champion_server: tuple[ServerProcess, str], registry: Registry, tampered: str
) -> None:
    server, _ = champion_server
    before = model_info(server.port)
    bad = tampered
    try:
        registry.client.set_registered_model_alias(NAME, "champion", bad)
        status, body = admin_reload(server.port)
        assert status == 502
        assert "does not match" in body["message"]
        assert model_info(server.port)["version"] == before["version"]
        status, _ = http_get(server.port, "/ready")
        assert status == 200
    finally:
        registry.client.set_registered_model_alias(NAME, "champion", before["version"])


def test_a_tampered_artifact_is_refused_at_start(
    registry: Registry, tampered: str, pipeline_repo: Path
) -> None:
    done = serve_fails(
        pipeline_repo, "--model", f"models:/{NAME}@tampered", MLFLOW_TRACKING_URI=registry.uri
    )
    assert done.returncode == 1
    assert "does not match the registered" in done.stderr
    assert "refusing to load" in done.stderr


def test_unknown_alias_fails_fast(registry: Registry, pipeline_repo: Path) -> None:
    done = serve_fails(
        pipeline_repo, "--model", f"models:/{NAME}@nobody", MLFLOW_TRACKING_URI=registry.uri
    )
    assert done.returncode == 1
    assert f"models:/{NAME}@nobody: cannot resolve in the MLflow registry" in done.stderr

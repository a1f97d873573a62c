"""Helpers shared by the ``modelci serve`` integration tests (file and registry models), the
reproduced pull request (``rerun_repo``) of the report, plots and Mermaid tests, and the Dask
engine's S3 server and cluster (one each per session)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.fileio import file_digest
from tests.conftest import REPO_ROOT, VENV_BIN, run, tool_env
from tests.dask_support import Cluster, dask_cli
from tests.process_support import ServerProcess, free_port
from tests.shared import built_once

MODELCI = str(VENV_BIN / "modelci")


def start_serve(repo: Path, *args: str, **env: str) -> ServerProcess:
    """``modelci serve ARGS`` on a free 127.0.0.1 port in ``repo``, once ``/ready`` answers 200;
    stopped by the caller (``stop()`` then ``cleanup()``)."""
    port = free_port()
    env = {"MODELCI_WORKERS": "1", **env}  # one process unless a test asks for more
    server = ServerProcess(
        [MODELCI, "serve", *args, "--port", str(port)], port, cwd=repo, env=tool_env(**env)
    )
    try:
        server.wait_ready()
    except Exception:
        server.cleanup()
        raise
    return server


def serve_fails(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``modelci serve ARGS`` expected to exit before serving (bounded by a timeout)."""
    return run(
        [MODELCI, "serve", *args, "--port", str(free_port())], repo, check=False, timeout=120, **env
    )


@dataclass(frozen=True)
class ServingImage:
    """The serving image built from this checkout with the pipeline's model baked in."""

    tag: str
    sha256: str  # of the baked models/model.skops
    repo: Path  # the pipeline repository whose model and params.yaml it holds
    variant: str  # the Dockerfile's SERVE_VARIANT: onnx (the default) or sklearn


@pytest.fixture(scope="session")
def image_context(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build context both variants are built from; skips with the reason where podman
    cannot run."""
    from tests.container_support import build_context, podman_problem

    problem = podman_problem()
    if problem is not None:
        pytest.skip(f"podman cannot build the serving image here: {problem}")
    models = pipeline_repo / "models"
    return build_context(tmp_path_factory.mktemp("image"), REPO_ROOT, models)


def _serving_image(context: Path, repo: Path, variant: str) -> ServingImage:
    """One variant's podman build (cached layers make a rebuild of unchanged inputs quick),
    tagged per checkout so concurrent sessions of other checkouts do not retag it."""
    from tests.container_support import build_image

    sha256 = file_digest(context / "models" / "model.skops")
    checkout = hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:8]
    tag = f"localhost/modelci-serve-test:{variant}-{checkout}"
    build_image(context, tag, sha256, variant)
    return ServingImage(tag, sha256, repo, variant)


@pytest.fixture(scope="session")
def serving_image(image_context: Path, pipeline_repo: Path) -> ServingImage:
    """The default (onnx) variant, built once per session."""
    return _serving_image(image_context, pipeline_repo, "onnx")


@pytest.fixture(scope="session")
def sklearn_serving_image(image_context: Path, pipeline_repo: Path) -> ServingImage:
    """The scikit-learn fallback variant, built once per session."""
    return _serving_image(image_context, pipeline_repo, "sklearn")


# The pull request of the report, plots and Mermaid tests: one training parameter changed.
RERUN_MAX_ITER = 3


def commit_baseline(repo: Path) -> None:
    """Commit ``repo``'s reproduced outputs as the base, with ``.modelci/`` ignored."""
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "\n.modelci/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline outputs"], repo)


@pytest.fixture(scope="session")
def rerun_repo(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pipeline_repo`` with its outputs committed as the base, then
    ``train.estimator_params.max_iter`` set to ``RERUN_MAX_ITER`` and ``dvc repro`` run in the
    working tree (uncommitted). Built once per run, read-only: tests copy it. Three modules
    (report, ``dvc plots`` and Mermaid) each reproduced such a pull request of their own."""

    def build(root: Path) -> None:
        repo = Path(shutil.copytree(pipeline_repo, root / "repo", symlinks=True))
        commit_baseline(repo)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["train"]["estimator_params"]["max_iter"] = RERUN_MAX_ITER
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "repro", "--quiet"], repo)

    return built_once(tmp_path_factory, "rerun", build) / "repo"


# ---- the Dask engine (docs/scale.md): one S3 server and one cluster for the session -----------

# Each worker's memory limit (Dask pauses a worker at 80% of it; its nanny restarts it at 95%).
DASK_WORKER_MEMORY = 500_000_000


def dask_s3_env(s3: Any) -> dict[str, str]:
    """What the workers and the stages need to read the test's S3 server (moto takes any
    credentials)."""
    from tests.integration.registry_support import S3_ENV

    return {**S3_ENV, "AWS_ENDPOINT_URL": s3.endpoint}


@pytest.fixture(scope="session")
def dask_s3() -> Iterator[Any]:
    """moto's S3 server for the Dask engine's tests; each module puts its own bucket in it."""
    pytest.importorskip("moto.server", reason="moto[server] is locked in the test group")
    from tests.integration.registry_support import S3Server

    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dask_cluster(dask_s3: Any) -> Iterator[Cluster]:
    """A ``dask scheduler`` and two ``dask worker`` processes (1 thread, ``DASK_WORKER_MEMORY``
    each) on 127.0.0.1, shared by every test that does not kill a worker, stopped by PID."""
    if dask_cli() is None:
        pytest.skip("the dask CLI is missing: install modelci's dask extra (make install)")
    with Cluster(workers=2, memory_limit=str(DASK_WORKER_MEMORY), env=dask_s3_env(dask_s3)) as up:
        yield up

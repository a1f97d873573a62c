"""``modelci registry register``: one version per (git commit, model file), never a duplicate.

The version carries the lineage of the bytes it stands for: git commit and commit time, the data
hashes in ``dvc.lock``, the params digest, the metrics, the model file's sha256 and the PR report
it came from. The commit and its state (``modelci.git_dirty``, and whether the model file is the
one ``dvc.lock`` records) are read when registering: the MLflow run that logged the model was
made by ``dvc repro`` *before* the commit, so its own commit tags describe the parent commit and
a dirty tree; they are kept as ``modelci.run.git_commit``/``modelci.run.git_dirty``.
Registering the same commit and file again returns the existing version; a different file for a
commit that already has a version is refused.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelci.config import ReleaseParams
from modelci.dvcfiles import LOCK, DvcLock, lock_out_md5, read_lock
from modelci.errors import ModelFileError
from modelci.fileio import dvc_dir_md5, file_digest
from modelci.layout import DEFAULT_PATHS, StagePaths
from modelci.lineage import UNKNOWN, _git, git_commit, git_dirty
from modelci.model_version import Version
from modelci.registry.core import Registry, RegistryError, open_registry, sha256_hex
from modelci.tags import (
    DVC_PREFIX,
    METRIC_PREFIX,
    TAG_COMMIT,
    TAG_COMMIT_TIME,
    TAG_DIRTY,
    TAG_MATCHES_LOCK,
    TAG_ONNX_SHA256,
    TAG_PARAMS_DIGEST,
    TAG_PR_REPORT,
    TAG_REGISTERED_AT,
    TAG_REGISTERED_BY,
    TAG_RUN_COMMIT,
    TAG_RUN_DIRTY,
    TAG_SHA256,
    data_md5_tag,
)

# Run tags copied onto the version so the registry alone tells where a version came from: content
# hashes, true whenever the run logged these bytes (the commit tags are the register's own).
RUN_LINEAGE_TAGS = (TAG_PARAMS_DIGEST, data_md5_tag("train"), data_md5_tag("test"))
# The run's commit tags, kept under these names: what the tree was when the run was logged.
RUN_COMMIT_TAGS = {TAG_COMMIT: TAG_RUN_COMMIT, TAG_DIRTY: TAG_RUN_DIRTY}


@dataclass(frozen=True)
class Registered:
    version: Version
    created: bool
    run_id: str


def commit_time(commit: str) -> str:
    """Committer time (unix seconds) of ``commit``; "0" when git cannot tell."""
    if commit == UNKNOWN:
        return "0"
    return _git("show", "-s", "--format=%ct", commit) or "0"


def commit_state(commit: str, model: Path, lock: DvcLock | None) -> dict[str, str]:
    """The registered commit's real state: tracked files changed since it (``git_dirty``), and
    whether the model file is the one ``dvc.lock`` records for it (DVC outputs are invisible
    to git; absent when the lock does not list the file)."""
    state = {TAG_DIRTY: "unknown" if commit == UNKNOWN else str(git_dirty()).lower()}
    locked = lock_out_md5(lock, model.as_posix())
    if locked is not None:
        state[TAG_MATCHES_LOCK] = str(file_digest(model, "md5") == locked).lower()
    return state


def export_pin(directory: Path, source_sha256: str, lock: DvcLock | None) -> str | None:
    """The sha256 of the ONNX export in ``directory`` that a release pins (None: no intact
    export of this model), once the folder is the one ``dvc.lock`` records for it.

    The manifest binding ``model.onnx`` to its sha256 sits in the folder, so whoever edits one
    can rewrite the other; ``dvc.lock`` (reviewed with the pull request) records the folder's
    hash, and a folder that differs from it is refused: its pin would vouch for an export
    nobody reviewed."""
    from modelci.serving.exported import export_sha256

    locked = lock_out_md5(lock, directory.as_posix())
    if locked is not None and directory.is_dir():
        actual = dvc_dir_md5(directory)
        if actual != locked:
            raise RegistryError(
                f"{directory}: the ONNX export is not the one dvc.lock records (DVC hash "
                f"{actual}, dvc.lock {locked}): run `dvc checkout {directory}`, or `dvc repro` "
                "and commit dvc.lock, then register again"
            )
    return export_sha256(directory, source_sha256)


def find_sha256(report: Any) -> str | None:
    """The model sha256 a PR report records (key ``model_sha256``, or ``sha256`` under a
    ``model``/``artifact`` mapping), searched depth-first."""
    if isinstance(report, dict):
        for key in ("model_sha256", "artifact_sha256"):
            value = report.get(key)
            if isinstance(value, str) and len(value) == 64:
                return value
        for key in ("model", "artifact", "pr", "current", "head"):
            sub = report.get(key)
            if isinstance(sub, dict):
                value = sub.get("sha256")
                if isinstance(value, str) and len(value) == 64:
                    return value
        for value in report.values():
            found = find_sha256(value)
            if found:
                return found
    elif isinstance(report, list):
        for item in report:
            found = find_sha256(item)
            if found:
                return found
    return None


def read_report(path: Path) -> tuple[str | None, str]:
    """(model sha256, short description) of a PR report JSON file."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: PR report not found") from None
    except (OSError, ValueError) as error:
        raise RegistryError(f"{path}: cannot read PR report: {error}".splitlines()[0]) from None
    pr = report.get("pr_number") if isinstance(report, dict) else None
    if pr is None and (path.parent / "metadata.json").is_file():  # the CI report artifact
        try:
            pr = json.loads((path.parent / "metadata.json").read_text("utf-8")).get("pr_number")
        except (OSError, ValueError, AttributeError):
            pr = None
    label = f"PR #{pr}" if isinstance(pr, int) and not isinstance(pr, bool) else path.name
    return find_sha256(report), label


def local_metrics(paths: StagePaths) -> dict[str, float]:
    """The metrics of the metrics files ``dvc.yaml`` declares (merged), else ``paths.metrics``."""
    from modelci.statefiles import WorkTreeSource, merge_metrics, parse_metrics, read_declared

    source = WorkTreeSource(Path.cwd())
    declared = read_declared(source, [])
    files = declared.metrics if declared.found and declared.metrics else [str(paths.metrics)]
    parsed: dict[str, dict[str, float] | None] = {}
    for file in files:
        data = source.read(file)
        if data is None:
            raise FileNotFoundError(f"{file}: metrics file not found")
        parsed[file] = parse_metrics(data, file)
    return merge_metrics(parsed, []) or {}


def _ensure_run(params: ReleaseParams, paths: StagePaths, data: bytes, sha256: str) -> str:
    """The MLflow run that logged this model file; logs one from the local outputs if none."""
    from modelci import tracking

    tracking.configure(params.tracking.experiment)
    try:
        run_id = tracking.find_run(sha256)
    except Exception as error:
        raise RegistryError(f"searching runs for sha256 {sha256[:12]} failed: {error}") from None
    if run_id:
        return run_id
    import pandas as pd

    from modelci.modelfile import load_model_bytes
    from modelci.statefiles import StateError

    try:
        scores = local_metrics(paths)
        test = pd.read_parquet(paths.test)
    except (OSError, ValueError, StateError) as error:
        raise RegistryError(
            f"no MLflow run logged model sha256 {sha256[:12]} and the local outputs to log one "
            f"are missing ({error}); run `dvc repro` with MLFLOW_TRACKING_URI set"
        ) from None
    model = load_model_bytes(data, str(paths.model), params.trusted_types)
    return tracking.log_run(params, paths, model, test[params.data.features], scores, sha256)


def register(
    params: ReleaseParams,
    paths: StagePaths = DEFAULT_PATHS,
    expect_sha256: str | None = None,
    pr_report: Path | None = None,
    registry: Registry | None = None,
) -> Registered:
    """Register ``paths.model`` (verified) for the current commit; idempotent."""
    from modelci.modelfile import verify_sha256

    try:
        data = paths.model.read_bytes()
    except OSError as error:
        raise ModelFileError(f"{paths.model}: cannot read model file ({error.strerror})") from None
    sha256 = sha256_hex(data)
    report_label = ""
    if pr_report is not None:
        reported, report_label = read_report(pr_report)
        if reported is None:
            raise RegistryError(f"{pr_report}: the PR report records no model sha256")
        if expect_sha256 is not None and expect_sha256 != reported:
            raise RegistryError(
                f"--expect-sha256 {expect_sha256} differs from the PR report's {reported}"
            )
        expect_sha256 = reported
    if expect_sha256 is not None:
        verify_sha256(data, expect_sha256, f"{paths.model} (the reviewed model)")

    reg = registry or open_registry(params)
    commit = git_commit()
    # The idempotency key: the commit; without git, the model file itself.
    key = {TAG_COMMIT: commit} if commit != UNKNOWN else {TAG_SHA256: sha256}
    existing = reg.versions(**key)
    same = [v for v in existing if v.sha256 == sha256]
    if same:
        return Registered(same[0], False, same[0].run_id)
    if existing:
        raise RegistryError(
            f"commit {commit[:12]} already has version {existing[0].version} with model sha256 "
            f"{existing[0].sha256[:12]}, not {sha256[:12]}: one version per commit; commit the "
            "change (or rerun `dvc repro` to restore the committed model) and register again"
        )

    lock = read_lock(Path(LOCK))
    onnx_sha256 = export_pin(paths.onnx, sha256, lock)  # before anything is logged
    run_id = _ensure_run(params, paths, data, sha256)
    if (paths.onnx / "manifest.json").is_file():
        # the build-time ONNX export (bound to this model's sha256 by its manifest), next to
        # model_file/model.skops: `modelci serve` of this version then starts without converting
        reg.call(
            "logging the ONNX export", reg.client.log_artifacts, run_id, str(paths.onnx), "onnx"
        )
    run = reg.call("reading the source run", reg.client.get_run, run_id)
    lock_hashes = lock.out_digests() if lock is not None else {}
    tags = {
        TAG_COMMIT: commit,
        TAG_COMMIT_TIME: commit_time(commit),
        TAG_SHA256: sha256,
        # the export's own pin: a server of this version serves the export only when it matches
        **({TAG_ONNX_SHA256: onnx_sha256} if onnx_sha256 else {}),
        TAG_REGISTERED_BY: os.environ.get("GITHUB_ACTOR") or _user(),
        TAG_REGISTERED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **commit_state(commit, paths.model, lock),
    }
    tags.update({k: run.data.tags[k] for k in RUN_LINEAGE_TAGS if k in run.data.tags})
    tags.update({new: run.data.tags[k] for k, new in RUN_COMMIT_TAGS.items() if k in run.data.tags})
    tags.update({METRIC_PREFIX + k: repr(v) for k, v in sorted(run.data.metrics.items())})
    tags.update({DVC_PREFIX + k: v for k, v in lock_hashes.items()})
    if report_label:
        tags[TAG_PR_REPORT] = report_label
    if os.environ.get("MODELCI_PR_URL"):
        tags[TAG_PR_REPORT] = os.environ["MODELCI_PR_URL"]

    reg.ensure_model()
    import mlflow

    mv = reg.call(
        f"registering a version of {reg.name!r}",
        mlflow.register_model,
        f"runs:/{run_id}/model",
        reg.name,
        tags=tags,
    )
    mine = int(mv.version)
    # Two registrations of one commit can race past the search above: the lowest version wins,
    # the others delete themselves, so every racer returns the same version.
    racers = reg.versions(**key)
    if racers and racers[0].version != mine:
        reg.call(
            f"removing duplicate version {mine}",
            reg.client.delete_model_version,
            reg.name,
            str(mine),
        )
        winner = racers[0]
        if winner.sha256 != sha256:
            raise RegistryError(
                f"commit {commit[:12]} was registered concurrently as version {winner.version} "
                "with a different model file"
            )
        return Registered(winner, False, winner.run_id)
    return Registered(reg.get(mine), True, run_id)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def summary_markdown(done: Registered) -> str:
    """The job summary of ``modelci registry register``."""
    v = done.version
    word = "registered" if done.created else "already registered"
    return (
        f"## Registered\n\n- {word} version {v.version} of commit `{v.commit}`\n"
        f"- model sha256 `{v.sha256}`\n- PR report: {v.tags.get(TAG_PR_REPORT, 'none')}\n"
    )

"""``dvc repro`` with a record of what each stage did: ran, restored from the run-cache, or
unchanged, and the time a restored stage saved.

What DVC did is read from its own log lines (DVC 3.x): ``Running stage 'X':``, ``Stage 'X' is
cached - skipping run, checking out outputs`` (restored from the run-cache: its command did not
run) and ``Stage 'X' didn't change, skipping``. A stage that ran is timed from its ``Running``
line to the next line DVC writes about a stage or the lock file.

The time saved is the duration recorded when the stage last ran with the same command,
dependencies and params (the same content the run-cache keys on, here read from ``dvc.lock``):
each run records it in a small ledger, ``modelci/durations/KEY.json``, in the local DVC cache and,
with ``--push-durations``, in the default DVC remote next to DVC's own folders, so a later run
on another machine that restores the stage from the shared run-cache finds it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from modelci._proc import which
from modelci.dvcfiles import DvcLock, LockStage, read_lock
from modelci.fileio import write_text

LEDGER = ("modelci", "durations")
LOCAL_CACHE = Path(".dvc") / "cache"

_RUNNING = re.compile(r"^Running stage '(?P<name>.+)':\s*$")
_RESTORED = re.compile(r"^Stage '(?P<name>.+)' is cached - skipping run, checking out outputs")
_UNCHANGED = re.compile(r"^(?:Stage )?'(?P<name>.+)' didn't change, skipping")
_BOUNDARY = re.compile(r"^(?:Updating lock file|Use `dvc push`|ERROR: )")


@dataclass
class StageRun:
    """What ``dvc repro`` did with one stage; ``seconds`` for a stage that ran, ``saved_seconds``
    for one restored (None when no earlier run recorded its duration)."""

    name: str
    status: str  # ran | restored | unchanged
    seconds: float | None = None
    saved_seconds: float | None = None


def parse_log(lines: Iterable[tuple[float, str]], end: float) -> list[StageRun]:
    """The stages of a ``dvc repro`` log, given as (monotonic time, line) pairs; ``end`` closes
    a stage still running when the log ends. A stage's address keeps DVC's spelling
    (``train``, or ``models/fraud/dvc.yaml:train`` from another folder)."""
    stages: list[StageRun] = []
    running: tuple[StageRun, float] | None = None

    def close(at: float) -> None:
        nonlocal running
        if running is not None:
            running[0].seconds = round(at - running[1], 3)
            running = None

    for at, raw in lines:
        line = raw.strip()
        for pattern, status in ((_RUNNING, "ran"), (_RESTORED, "restored"), (_UNCHANGED, None)):
            match = pattern.match(line)
            if match is None:
                continue
            close(at)
            stage = StageRun(match.group("name"), status or "unchanged")
            stages.append(stage)
            if status == "ran":
                running = (stage, at)
            break
        else:
            if _BOUNDARY.match(line):
                close(at)
    close(end)
    return stages


def run_key(stage: LockStage) -> str:
    """What the run-cache keys a stage on (command, dependencies' content, params), as a hash
    of its ``dvc.lock`` entry: the same for every run of the same inputs, on any machine."""
    content = {
        "cmd": stage.cmd,
        "deps": sorted((dep.path, dep.digest or "") for dep in stage.deps),
        "params": stage.params,
    }
    canonical = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class Store(Protocol):
    """Where durations are kept: ``read(key)`` -> bytes or None, ``write(key, data)``."""

    def read(self, key: str) -> bytes | None: ...

    def write(self, key: str, data: bytes) -> None: ...


class FolderStore:
    """The ledger in a local folder (the DVC cache, which CI restores with actions/cache)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, key: str) -> bytes | None:
        try:
            return (self.folder / f"{key}.json").read_bytes()
        except OSError:
            return None

    def write(self, key: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{key}.json").write_bytes(data)


class RemoteStore:
    """The ledger in the default DVC remote (any kind DVC reaches), through DVC's filesystem."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = fs.join(root, *LEDGER)

    def read(self, key: str) -> bytes | None:
        try:
            return bytes(self.fs.cat_file(self.fs.join(self.root, f"{key}.json")))
        except (OSError, FileNotFoundError):
            return None

    def write(self, key: str, data: bytes) -> None:
        self.fs.makedirs(self.root, exist_ok=True)
        self.fs.pipe_file(self.fs.join(self.root, f"{key}.json"), data)


def default_remote(root: Path) -> RemoteStore | None:
    """The ledger in the repository's default DVC remote; None when none is configured."""
    from dvc.config import NoRemoteError
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        try:
            remote = repo.cloud.get_remote()
        except NoRemoteError:
            return None
        return RemoteStore(remote.fs, remote.path)


def recorded_seconds(stores: Sequence[Store], key: str) -> float | None:
    """The duration a ledger recorded for ``key`` (the first store that has one)."""
    for store in stores:
        data = store.read(key)
        if data is None:
            continue
        try:
            value = json.loads(data).get("seconds")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    return None


def account(
    stages: list[StageRun], lock: DvcLock | None, read: Sequence[Store], write: Sequence[Store]
) -> None:
    """Record the durations of the stages that ran; look up the time the restored ones saved."""
    locked = lock.stages if lock is not None else {}
    for stage in stages:
        entry = locked.get(stage.name.rpartition(":")[2])
        if entry is None:
            continue
        key = run_key(entry)
        if stage.status == "ran" and stage.seconds is not None:
            record = {"stage": entry.name, "seconds": stage.seconds, "recorded": time.time()}
            for store in write:
                store.write(key, json.dumps(record).encode("utf-8"))
        elif stage.status == "restored":
            stage.saved_seconds = recorded_seconds(read, key)


def _dvc() -> list[str]:
    found = which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def run_repro(
    args: Sequence[str], root: Path, echo: Callable[[str], None]
) -> tuple[int, list[StageRun]]:
    """Run ``dvc repro ARGS`` in ``root``, echoing its output; its exit code and stages."""
    # Streamed, not through modelci._proc.run (which captures): the job log shows dvc's progress.
    process = subprocess.Popen(  # noqa: S603 - dvc, with the caller's arguments
        [*_dvc(), "repro", *args],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert process.stdout is not None  # noqa: S101 - stdout=PIPE
    lines = []
    for line in process.stdout:
        echo(line.rstrip("\n"))
        lines.append((time.monotonic(), line))
    code = process.wait()
    return code, parse_log(lines, time.monotonic())


def repro(
    root: Path, args: Sequence[str], out: Path, push_durations: bool, echo: Callable[[str], None]
) -> int:
    """``dvc repro`` (with ``--pull`` when a default remote is configured), then ``out``
    (stages.json): each stage's status and time saved."""
    remote = default_remote(root)
    if remote is not None and "--pull" not in args:
        args = [*args, "--pull"]  # a restored stage's outputs may be only in the remote
    code, stages = run_repro(args, root, echo)
    local = FolderStore(root / LOCAL_CACHE / Path(*LEDGER))
    lock = read_lock(root / "dvc.lock")
    read_from: list[Store] = [local] + ([remote] if remote is not None else [])
    write_to: list[Store] = [local] + ([remote] if remote is not None and push_durations else [])
    account(stages, lock, read_from, write_to)
    payload = {"dvc_exit_code": code, "stages": [asdict(stage) for stage in stages]}
    write_text(out, json.dumps(payload, indent=2) + "\n")
    for stage in stages:
        echo(f"modelci: {stage_line(stage)}")
    return code


def stage_line(stage: StageRun) -> str:
    if stage.status == "ran":
        return f"stage {stage.name}: ran ({stage.seconds or 0:.1f} s)"
    if stage.status == "restored":
        saved = stage.saved_seconds
        shown = "no recorded duration" if saved is None else f"{saved / 60:.1f} minutes saved"
        return f"stage {stage.name}: restored from cache, {shown}"
    return f"stage {stage.name}: unchanged"

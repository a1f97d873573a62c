"""Expensive session fixtures built once per test run, also when pytest-xdist runs the suite in
several worker processes (each worker has its own session, so a plain session fixture would be
built once per worker).

The pattern of pytest-xdist's docs ("Making session-scoped fixtures execute only once"): the first
worker to need the directory builds it under a file lock in the run's base temporary directory,
which all workers of one run share; the others wait for the lock and reuse what it built. Users
treat the directory as read-only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


def xdist_worker() -> str | None:
    """This process's xdist worker id (``gw0``, ...), or None when pytest runs in one process."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """A directory ``build`` fills, made once per test run and shared by every xdist worker."""
    if xdist_worker() is None:
        target = tmp_path_factory.mktemp(name)
        build(target)
        return target
    # pytest-of-USER/pytest-N/ holds popen-gw0/, popen-gw1/, ...: one per run, shared by workers.
    target = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    done = target / ".built"
    with FileLock(f"{target}.lock"):
        if not done.is_file():
            shutil.rmtree(target, ignore_errors=True)  # what a failed build left
            target.mkdir()
            build(target)
            done.touch()
    return target

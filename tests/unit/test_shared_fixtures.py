"""``tests/shared.py``: a directory built once per run, whichever xdist worker needs it first."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from tests.shared import built_once

pytestmark = pytest.mark.unit


class _Factory:
    """The two methods of ``pytest.TempPathFactory`` that ``built_once`` calls."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def getbasetemp(self) -> Path:
        return self.base

    def mktemp(self, name: str) -> Path:
        path = self.base / f"{name}0"
        path.mkdir(parents=True)
        return path


def factory(base: Path) -> pytest.TempPathFactory:
    return cast(pytest.TempPathFactory, _Factory(base))


def test_workers_of_one_run_share_one_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[Path] = []

    def build(target: Path) -> None:
        builds.append(target)
        (target / "made").write_text(str(len(builds)))

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    first = built_once(factory(tmp_path / "popen-gw0"), "thing", build)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    second = built_once(factory(tmp_path / "popen-gw1"), "thing", build)
    assert first == second == tmp_path / "shared-thing"
    assert builds == [first]
    assert (first / "made").read_text() == "1"


def test_a_failed_build_is_redone_by_the_next_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(target: Path) -> None:
        (target / "half").write_text("x")
        raise RuntimeError("build failed")

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    with pytest.raises(RuntimeError, match="build failed"):
        built_once(factory(tmp_path / "popen-gw0"), "thing", broken)
    target = built_once(factory(tmp_path / "popen-gw1"), "thing", lambda t: (t / "ok").touch())
    assert sorted(p.name for p in target.iterdir()) == [".built", "ok"]


def test_without_xdist_each_session_builds_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    target = built_once(factory(tmp_path), "thing", lambda t: (t / "ok").touch())
    assert target == tmp_path / "thing0"
    assert (target / "ok").is_file()

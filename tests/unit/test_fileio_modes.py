"""Files written atomically get the mode the user's umask gives, as with any other tool."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelci.fileio import write_bytes, write_json, write_text

pytestmark = pytest.mark.unit


@pytest.fixture(params=[0o022, 0o002, 0o077], ids=["022", "002", "077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(old)


def test_written_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    write_text(tmp_path / "a.txt", "x")
    write_bytes(tmp_path / "b.bin", b"x")
    write_json(tmp_path / "sub" / "c.json", {"x": 1})
    expected = 0o666 & ~umask
    for name in ("a.txt", "b.bin", "sub/c.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name


def test_replacing_a_file_takes_the_umask_not_the_old_mode(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("{}")
    target.chmod(0o600)
    write_json(target, {"accuracy": 1.0})
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask

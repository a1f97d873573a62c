"""The typed dvc.lock (modelci.dvcfiles) on fixtures of each format DVC has written.

DVC 2.x writes ``md5`` alone (its ``md5-dos2unix`` hash); DVC 3.x adds ``hash: md5`` and keeps the
2.x entries of outputs it has not re-hashed; remote outputs carry ``etag`` (S3, GS, Azure, HTTP) or
``checksum`` (HDFS). Lock files made by the installed DVC are read in
``tests/integration/test_dvcfiles_real.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelci.dvcfiles import LockError, lock_out_md5, parse_lock, read_lock
from modelci.errors import ModelCIError

pytestmark = pytest.mark.unit

DVC2_LOCK = """\
schema: '2.0'
stages:
  prepare:
    cmd: python prepare.py
    deps:
    - path: data/raw.csv
      md5: 1111
      size: 10
    params:
      params.yaml:
        prepare.seed: 1
    outs:
    - path: data/prepared
      md5: 2222.dir
      size: 20
      nfiles: 2
  train:
    cmd:
    - python train.py
    - python check.py
    deps:
    - path: data/prepared
      md5: 2222.dir
      size: 20
      nfiles: 2
    outs:
    - path: models/model.skops
      md5: 3333
      size: 30
"""

DVC3_LOCK = """\
schema: '2.0'
stages:
  train:
    cmd: modelci train
    deps:
    - path: data/prepared/train.parquet
      hash: md5
      md5: 4444
      size: 40
    - path: s3://bucket/raw.csv
      version_id: v1
      etag: 5555
      size: 50
    - path: hdfs://cluster/raw.csv
      checksum: 6666
    outs:
    - path: models/model.skops
      hash: md5
      md5: 7777
      size: 70
    - path: reports/old.json
      md5: 8888
      size: 80
"""


def test_dvc2_lock_md5_without_hash_field_is_md5_dos2unix() -> None:
    lock = parse_lock(yaml.safe_load(DVC2_LOCK))
    assert list(lock.stages) == ["prepare", "train"]
    model = lock.out("models/model.skops")
    assert model is not None
    assert (model.digest, model.algorithm, model.md5, model.size) == (
        "3333",
        "md5-dos2unix",
        "3333",
        30,
    )
    folder = lock.out("data/prepared")
    assert folder is not None
    assert (folder.digest, folder.nfiles) == ("2222.dir", 2)
    assert lock.stages["train"].cmd == ("python train.py", "python check.py")
    assert lock.stages["prepare"].params == {"params.yaml": {"prepare.seed": 1}}
    assert lock.out_digests() == {"data/prepared": "2222.dir", "models/model.skops": "3333"}


def test_dvc3_lock_hash_field_and_remote_outputs() -> None:
    lock = parse_lock(yaml.safe_load(DVC3_LOCK))
    train = lock.stages["train"]
    assert [(d.path, d.digest, d.algorithm) for d in train.deps] == [
        ("data/prepared/train.parquet", "4444", "md5"),
        ("s3://bucket/raw.csv", "5555", "etag"),
        ("hdfs://cluster/raw.csv", "6666", "checksum"),
    ]
    assert [d.md5 for d in train.deps] == ["4444", None, None]  # a remote etag is no md5
    # A 3.x lock keeps the 2.x entry of an output it has not re-hashed.
    assert [(o.algorithm, o.md5) for o in train.outs] == [("md5", "7777"), ("md5-dos2unix", "8888")]
    assert lock_out_md5(lock, "models/model.skops") == "7777"
    assert lock_out_md5(lock, "missing") is None
    assert lock.entry_digests()[("train", "dep s3://bucket/raw.csv")] == "5555"


def test_untrusted_shapes_are_skipped_not_raised() -> None:
    lock = parse_lock(
        {"stages": {"a": "not a stage", "b": {"outs": [{"md5": "no path"}, 3, {"path": "x"}]}}}
    )
    assert list(lock.stages) == ["b"]
    (out,) = lock.stages["b"].outs
    assert (out.path, out.digest, out.algorithm) == ("x", None, None)
    assert lock.out_digests() == {}
    assert parse_lock(None).stages == {}
    assert parse_lock({"stages": [1]}).problems == ("dvc.lock: no 'stages' mapping",)
    assert parse_lock(["a list"]).problems == ("dvc.lock: expected a mapping at the top level",)
    assert parse_lock({"stages": {"s": {"cmd": 3}}}).stages["s"].cmd == "3"


def test_read_lock_absent_present_and_broken(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    assert read_lock(lock) is None
    lock.write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: x\n    outs:\n"
        "    - path: models/model.skops\n      md5: abc\n      size: 3\n"
    )
    read = read_lock(lock)
    assert read is not None
    assert read.out_digests() == {"models/model.skops": "abc"}
    lock.write_text("stages: [unclosed")
    with pytest.raises(LockError, match=r"dvc\.lock: not valid YAML") as error:
        read_lock(lock)
    assert isinstance(error.value, ModelCIError)
    assert "\n" not in str(error.value)

"""The typed dvc.lock (modelci.dvcfiles) on lock files written by the installed DVC.

Fixtures of the older formats are in ``tests/unit/test_dvcfiles.py``; this test holds the model
to what the DVC release the project installs really writes: a file output, a folder output
(``.dir`` hash with ``nfiles``), a dependency, params, and ``hash: md5`` on every entry.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelci.dvcfiles import read_lock
from modelci.fileio import file_digest
from modelci.serving.exported import write_export
from tests.conftest import run
from tests.unit.test_serving_export import SCHEMA, SOURCE, fitted_model

pytestmark = pytest.mark.integration

DVC_YAML = """\
stages:
  make:
    cmd: python make.py
    deps:
    - make.py
    params:
    - seed
    outs:
    - out.bin
    - folder
"""

MAKE = """\
from pathlib import Path
Path("out.bin").write_bytes(bytes(range(256)) * 3)
Path("folder").mkdir(exist_ok=True)
Path("folder/a.txt").write_text("a\\n")
Path("folder/b.txt").write_text("b\\n")
"""


def test_lock_written_by_installed_dvc(tmp_path: Path) -> None:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text("seed: 7\n")
    (tmp_path / "make.py").write_text(MAKE)
    run(["dvc", "init", "--no-scm", "--quiet"], tmp_path)
    run(["dvc", "repro", "--quiet"], tmp_path, timeout=120)

    lock = read_lock(tmp_path / "dvc.lock")
    assert lock is not None
    assert not lock.problems
    stage = lock.stages["make"]
    assert stage.cmd == "python make.py"
    assert stage.params == {"params.yaml": {"seed": 7}}
    (dep,) = stage.deps
    assert (dep.path, dep.algorithm, dep.md5) == (
        "make.py",
        "md5",
        file_digest(tmp_path / "make.py", "md5"),
    )
    out = lock.out("out.bin")
    assert out is not None
    assert out.algorithm == "md5"  # DVC 3 writes `hash: md5`
    assert out.md5 == file_digest(tmp_path / "out.bin", "md5")
    assert out.size == 768
    folder = lock.out("folder")
    assert folder is not None
    assert folder.digest is not None
    assert folder.digest.endswith(".dir")
    assert folder.nfiles == 2
    assert set(lock.out_digests()) == {"out.bin", "folder"}


def test_the_folder_hash_is_the_one_dvc_records(tmp_path: Path) -> None:
    """modelci.fileio.dvc_dir_md5 of an ONNX export folder is the hash `dvc add` records."""
    import subprocess
    import sys

    import yaml

    from modelci.fileio import dvc_dir_md5

    write_export(tmp_path / "models" / "onnx", SOURCE, fitted_model(), SCHEMA)
    dvc = Path(sys.executable).parent / "dvc"
    for command in (["git", "init", "-q"], [str(dvc), "init", "-q"],
                    [str(dvc), "add", "-q", "models/onnx"]):  # fmt: skip
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    recorded = yaml.safe_load((tmp_path / "models" / "onnx.dvc").read_text())["outs"][0]["md5"]
    assert dvc_dir_md5(tmp_path / "models" / "onnx") == recorded

"""``modelci serve`` in a repository that has not released a model yet (#23, the first hour)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run
from tests.integration.conftest import MODELCI

pytestmark = pytest.mark.integration


def test_serve_without_a_champion_points_at_the_pipelines_file(tmp_path: Path) -> None:
    shutil.copy2(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.skops").write_bytes(b"not read: the registry fails first")
    done = run(
        [MODELCI, "serve", "--port", "0"],
        tmp_path,
        check=False,
        timeout=300,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        MODELCI_WORKERS="1",
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Registered Model with name=titanic-survival not found" in lines[0]
    hint = "serve the pipeline's model: modelci serve --model models/model.skops"
    assert hint in lines[0]

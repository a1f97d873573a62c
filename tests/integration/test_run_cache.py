"""`modelci pr repro` against the real DVC: a revert of a params change is restored from the
run-cache of a shared remote (a local folder) on a machine with an empty cache, the stage's
command does not run, and the time saved is the duration recorded by the run that produced it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DVC_YAML = """\
stages:
  train:
    cmd: sh train.sh
    deps:
      - train.sh
    params:
      - lr
    outs:
      - model.txt
"""
# every run of the command leaves a line in a file outside the repository
TRAIN_SH = 'echo ran >> "$RUNS_LOG"\nsleep 1\ncp params.yaml model.txt\n'


def modelci(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "modelci", "pr", "repro", *args], repo, **env)


def stages(repo: Path) -> dict[str, Any]:
    data = json.loads((repo / ".modelci" / "report" / "stages.json").read_text(encoding="utf-8"))
    return {stage["name"]: stage for stage in data["stages"]}


def test_a_reverted_param_is_restored_and_saves_the_recorded_time(tmp_path: Path) -> None:
    repo, remote, runs = tmp_path / "repo", tmp_path / "remote", tmp_path / "runs.log"
    repo.mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q"], repo)
    run([*dvc, "init", "-q"], repo)
    run([*dvc, "remote", "add", "-d", "shared", str(remote)], repo)
    (repo / "dvc.yaml").write_text(DVC_YAML, encoding="utf-8")
    (repo / "train.sh").write_text(TRAIN_SH, encoding="utf-8")
    env = {"RUNS_LOG": str(runs)}

    (repo / "params.yaml").write_text("lr: 0.1\n", encoding="utf-8")
    modelci(repo, "--push-durations", **env)
    first = stages(repo)["train"]
    assert first["status"] == "ran"
    assert first["seconds"] >= 1
    run([*dvc, "push", "--run-cache"], repo)

    (repo / "params.yaml").write_text("lr: 0.5\n", encoding="utf-8")
    modelci(repo, "--push-durations", **env)
    assert stages(repo)["train"]["status"] == "ran"
    run([*dvc, "push", "--run-cache"], repo)
    assert runs.read_text(encoding="utf-8").count("ran") == 2

    # another machine: an empty local cache; the revert finds lr 0.1's run in the shared remote
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "params.yaml").write_text("lr: 0.1\n", encoding="utf-8")
    run([*dvc, "pull", "--run-cache", "--allow-missing"], repo)
    done = modelci(repo, **env)  # with a default remote, repro runs dvc repro --pull
    restored = stages(repo)["train"]
    assert restored["status"] == "restored", done.stdout
    assert runs.read_text(encoding="utf-8").count("ran") == 2  # the command did not run
    assert (repo / "model.txt").read_text(encoding="utf-8") == "lr: 0.1\n"
    assert restored["saved_seconds"] == first["seconds"]
    assert f"restored from cache, {first['seconds'] / 60:.1f} minutes saved" in done.stdout

    # nothing changed since: unchanged, nothing run
    modelci(repo, **env)
    assert stages(repo)["train"]["status"] == "unchanged"
    assert runs.read_text(encoding="utf-8").count("ran") == 2

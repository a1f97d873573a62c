"""The real `dvc repro` in temporary repositories: no-op re-runs, selective re-runs, MLflow
lineage, experiments, a user's own CSV, and an unreachable tracking server."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO_ROOT, make_model_repo, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def copy_repo(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def edit_params(repo: Path, section: str, key: str, value: Any) -> None:
    path = repo / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw[section][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_pipeline_outputs(pipeline_repo: Path) -> None:
    for name in (
        "data/prepared/train.parquet",
        "data/prepared/test.parquet",
        "data/prepared/profile.json",
        "models/model.skops",
        "metrics.json",
        "reports/slices.json",
        "reports/model_card.md",
        "plots/roc.csv",
        "plots/precision_recall.csv",
        "plots/confusion.csv",
        "dvc.lock",
    ):
        assert (pipeline_repo / name).is_file(), name
    profile = json.loads((pipeline_repo / "data/prepared/profile.json").read_text())
    assert profile["rows"] == {"total": 2207, "train": 1655, "test": 552}
    slices = json.loads((pipeline_repo / "reports/slices.json").read_text())
    assert set(slices) == {"gender", "class"}
    assert slices["gender"]["female"]["rows"] + slices["gender"]["male"]["rows"] == 552
    card = (pipeline_repo / "reports/model_card.md").read_text()
    assert "## Metrics on the test split" in card
    # the per-row predictions the PR report pairs: the test rows, in order, scoring metrics.json
    predictions = pd.read_parquet(pipeline_repo / "reports/predictions.parquet")
    test = pd.read_parquet(pipeline_repo / "data/prepared/test.parquet")
    assert list(predictions.columns) == ["actual", "predicted", "proba:0", "proba:1"]
    assert (predictions["actual"].to_numpy() == test["survived"].to_numpy()).all()
    accuracy = (predictions["actual"] == predictions["predicted"]).mean()
    metrics = json.loads((pipeline_repo / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert "### By `class`" in card


def test_outputs_are_written_with_the_umask(pipeline_repo: Path) -> None:
    """Stage outputs get the mode any other tool gives them (0666 less the umask), not 0600."""
    mask = os.umask(0o022)
    os.umask(mask)
    outputs = [
        pipeline_repo / "metrics.json",
        *sorted((pipeline_repo / "plots").glob("*.csv")),
        *sorted((pipeline_repo / "reports").iterdir()),
    ]
    modes = {
        p.relative_to(pipeline_repo).as_posix(): oct(p.stat().st_mode & 0o777) for p in outputs
    }
    assert modes == dict.fromkeys(modes, oct(0o666 & ~mask))


def test_second_repro_is_a_no_op(pipeline_repo: Path) -> None:
    done = run(["dvc", "repro"], pipeline_repo)
    assert ran_stages(done.stdout) == []
    assert "Data and pipelines are up to date." in done.stdout
    status = run(["dvc", "status", "--json"], pipeline_repo)
    assert json.loads(status.stdout) == {}


def test_param_changes_rerun_only_dependent_stages(pipeline_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(pipeline_repo, tmp_path / "repo")
    # prepare and evaluate track the whole params.yaml (their sections are optional): prepare
    # re-runs, writes the same split, and train is skipped.
    edit_params(repo, "evaluate", "min_slice_rows", 5)
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == ["prepare", "evaluate"]

    edit_params(repo, "train", "scale_numeric", False)
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == [
        "prepare",
        "train",
        "export",
        "evaluate",
    ]

    edit_params(repo, "prepare", "seed", 7)
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == [
        "prepare",
        "train",
        "export",
        "evaluate",
    ]


def test_mlflow_run_has_metrics_and_lineage(pipeline_repo: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{pipeline_repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("modelci-titanic")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run_ = runs[0]
    metrics = json.loads((pipeline_repo / "metrics.json").read_text())
    assert run_.data.metrics == pytest.approx(metrics)
    tags = run_.data.tags
    head = run(["git", "rev-parse", "HEAD"], pipeline_repo).stdout.strip()
    assert tags["modelci.git_commit"] == head
    assert tags["modelci.git_dirty"] in {"true", "false"}
    lock = yaml.safe_load((pipeline_repo / "dvc.lock").read_text())
    outs = {out["path"]: out["md5"] for out in lock["stages"]["prepare"]["outs"]}
    assert tags["modelci.data.train.md5"] == outs["data/prepared/train.parquet"]
    assert tags["modelci.data.test.md5"] == outs["data/prepared/test.parquet"]
    model_md5 = lock["stages"]["train"]["outs"][0]["md5"]
    assert model_md5  # the model sha256 tag is checked against the file itself below
    import hashlib

    model_bytes = (pipeline_repo / "models/model.skops").read_bytes()
    assert tags["modelci.model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert run_.data.params["train.estimator"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    # the thread count the model's bytes depend on, from params.yaml (train.n_threads: 1)
    assert tags["modelci.train.n_threads"] == run_.data.params["train.n_threads"] == "1"
    card = (pipeline_repo / "reports/model_card.md").read_text()
    assert "- Threads: 1 (" in card
    artifacts = {item.path for item in client.list_artifacts(run_.info.run_id)}
    assert {"reports", "plots", "model_file"} <= artifacts
    logged = client.search_logged_models([experiment.experiment_id])
    assert [model.name for model in logged] == ["model"]


def test_experiment_run_is_listed(pipeline_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(pipeline_repo, tmp_path / "repo")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline"], repo)
    done = run(
        ["dvc", "exp", "run", "-n", "deeper", "-S", "train.estimator_params.max_iter=50"], repo
    )
    assert ran_stages(done.stdout) == ["prepare", "train", "export", "evaluate"]
    shown = run(["dvc", "exp", "show", "--json"], repo)
    assert "deeper" in shown.stdout
    assert "max_iter" in shown.stdout


EXAMPLE = re.compile(r"<!-- example:(?P<name>[\w-]+) -->\n```yaml\n(?P<body>.*?)```", re.DOTALL)


def docs_example(page: str, name: str) -> str:
    text = (REPO_ROOT / "docs" / page).read_text(encoding="utf-8")
    found = {m.group("name"): m.group("body") for m in EXAMPLE.finditer(text)}
    return found[name]


def test_own_data_example_of_the_docs_runs_as_written(tmp_path: Path) -> None:
    """docs/pipeline.md's "your own data" params.yaml, verbatim, replaces the whole params.yaml:
    a user's own CSV (tracked with `dvc add`), a regression task, another estimator, and the
    defaults of every section it leaves out (issue 8: it failed with `prepare: Field required`,
    then DVC's `Parameters 'tracking' are missing`)."""
    repo = make_model_repo(tmp_path / "repo")
    rng = np.random.default_rng(3)
    rows = 400
    size = rng.uniform(30, 200, rows)
    district = rng.choice(["north", "south", "centre"], rows)
    price = (
        1000 * size
        + np.select([district == "centre", district == "north"], [50000, 20000], 0)
        + rng.normal(0, 5000, rows)
    )
    frame = pd.DataFrame({"size": size, "district": district, "rooms": rng.integers(1, 6, rows)})
    frame["price"] = price
    (repo / "data").mkdir(exist_ok=True)
    frame.to_csv(repo / "data/houses.csv", index=False)
    run(["dvc", "add", "-q", "data/houses.csv"], repo)
    example = docs_example("pipeline.md", "own-data")
    assert "prepare:" not in example
    assert "tracking:" not in example
    (repo / "params.yaml").write_text(example)
    run(["modelci", "check-params"], repo)

    done = run(["dvc", "repro"], repo)
    assert ran_stages(done.stdout) == ["prepare", "train", "export", "evaluate"]
    metrics = json.loads((repo / "metrics.json").read_text())
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["r2"] > 0.8
    assert (repo / "plots/predictions.csv").is_file()
    assert (repo / "plots/residuals.csv").is_file()
    assert not (repo / "plots/roc.csv").exists()
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == []

    # Changing the user's data re-runs the whole pipeline.
    frame.head(300).to_csv(repo / "data/houses.csv", index=False)
    run(["dvc", "add", "-q", "data/houses.csv"], repo)
    assert ran_stages(run(["dvc", "repro"], repo).stdout) == [
        "prepare",
        "train",
        "export",
        "evaluate",
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_tracking_server_fails_clearly(pipeline_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(pipeline_repo, tmp_path / "repo")
    uri = f"http://127.0.0.1:{_closed_port()}"
    done = run(["modelci", "evaluate"], repo, check=False, timeout=120, MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f"modelci evaluate: error: MLflow tracking server {uri} is unreachable"
    )


def test_outputs_are_byte_reproducible(pipeline_repo: Path, tmp_path: Path) -> None:
    """Forcing every stage to run again, in a later commit, changes no committed byte."""
    repo = copy_repo(pipeline_repo, tmp_path / "repo")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "pipeline outputs"], repo)
    run(["dvc", "repro", "--force"], repo)
    assert run(["git", "status", "--porcelain"], repo).stdout == ""
    assert json.loads(run(["dvc", "status", "--json"], repo).stdout) == {}

"""Commands read what ``dvc.yaml`` declares: a repository whose training stage is the user's own
script (metrics and plots under other names, params in another file and in the user's own
section of params.yaml), and DVC outputs that a failed first ``dvc repro`` let into git."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import make_model_repo, run
from tests.integration.conftest import start_serve
from tests.integration.test_serving import post_json

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIT = '''\
"""The user's own training stage: no modelci pipeline code, only modelci's model file format."""
import json
from pathlib import Path

import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelci.modelfile import save_model

own = yaml.safe_load(Path("params.yaml").read_text())["mytrain"]
lr = yaml.safe_load(Path("mytrain.yaml").read_text())["lr"]
frame = pd.read_csv("data/points.csv")
train, test = frame.iloc[:200], frame.iloc[200:].reset_index(drop=True)
features = ["x1", "x2"]
model = make_pipeline(StandardScaler(), LogisticRegression(C=own["C"] * lr))
model.fit(train[features], train["label"])
save_model(model, Path("models/model.skops"))
test.to_parquet("data/test.parquet", index=False)
scores = model.predict_proba(test[features])[:, 1]
Path("results").mkdir(exist_ok=True)
accuracy = float((model.predict(test[features]) == test["label"]).mean())
positive_rate = float((scores >= 0.5).mean())
Path("results/scores.json").write_text(
    json.dumps({"accuracy": accuracy, "positive_rate": positive_rate})
)
rows = [(t / 10, float((scores >= t / 10).mean())) for t in range(11)]
pd.DataFrame(rows, columns=["threshold", "hit_rate"]).to_csv("results/curve.csv", index=False)
'''

DVC_YAML = """\
stages:
  fit:
    cmd: python fit.py
    deps: [fit.py, data/points.csv]
    params:
      - mytrain
      - mytrain.yaml: [lr]
    outs:
      - models/model.skops
      - data/test.parquet
    metrics:
      - results/scores.json:
          cache: false
    plots:
      - results/curve.csv:
          cache: false
          x: threshold
          y: hit_rate
          template: linear
          title: Hit rate by threshold
"""

PARAMS = {
    "data": {
        "source": "data/points.csv",
        "target": "label",
        "task": "binary",
        "columns": {
            "x1": {"type": "float"},
            "x2": {"type": "float"},
            "label": {"type": "int", "min": 0, "max": 1},
        },
    },
    "mytrain": {"C": 1.0},
    # promote re-scores the model with modelci's metrics: gate on a name both compute
    "gate": {"metrics": {"accuracy": {"min": 0.7, "tolerance": 0.05}}},
}


def write_points(path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 2))
    label = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.3, 300) > 0).astype(int)
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "label": label}).to_csv(path, index=False)


@pytest.fixture(scope="module")
def own_stage_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the user's own stage, run and committed once (the base)."""
    repo = tmp_path_factory.mktemp("own-stage")
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    (repo / "data").mkdir()
    write_points(repo / "data/points.csv")
    (repo / "fit.py").write_text(FIT)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (repo / "mytrain.yaml").write_text("lr: 1.0\n")
    (repo / ".gitignore").write_text(".modelci/\nmlflow.db\nmlruns/\n")
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "base"], repo)
    return repo


def test_report_gate_and_lock_read_the_declared_files(own_stage_repo: Path) -> None:
    repo = own_stage_repo
    run(["modelci", "pr", "check-lock"], repo)
    (repo / "mytrain.yaml").write_text("lr: 0.5\n")
    params = {**PARAMS, "mytrain": {"C": 0.2}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        run(["dvc", "repro"], repo)
        run(["modelci", "pr", "report", "--base", "HEAD", "--out", "report"], repo)
        report = json.loads((repo / "report/report.json").read_text())
        changed = {c["key"]: (c["base"], c["head"]) for c in report["params"]}
        assert changed == {"mytrain.C": (1.0, 0.2), "mytrain.yaml:lr": (1.0, 0.5)}
        metrics = {row["name"]: row for row in report["metrics"]}
        assert set(metrics) == {"accuracy", "positive_rate"}
        assert metrics["accuracy"]["gate"]["status"] == "pass"
        assert metrics["positive_rate"]["base"] is not None
        assert [plot["name"] for plot in report["plots"]] == ["curve"]
        assert report["plots"][0]["chart"].startswith("```mermaid\nxychart-beta\n")
        assert report["warnings"] == [
            "base: data/prepared/profile.json: not found in HEAD ("
            + report["base"]["commit"][:12]
            + ")",
            "PR: data/prepared/profile.json: not found in working tree",
        ]
        markdown = (repo / "report/report.md").read_text()
        assert "mytrain.yaml:lr" in markdown
        assert "Hit rate by threshold" in markdown

        gate = run(["modelci", "pr", "gate", "--base", "HEAD"], repo)
        assert "PASS    accuracy: " in gate.stdout
        verdict = json.loads((repo / ".modelci/verdict.json").read_text())
        assert verdict["metrics_file"] == "results/scores.json"
        assert verdict["metrics"][0]["baseline"] is not None

        stale = run(["modelci", "pr", "check-lock"], repo, check=False)
        assert stale.returncode == 1
        assert "changed by dvc repro: results/scores.json" in stale.stderr
    finally:
        run(["git", "checkout", "--", "."], repo)
        run(["dvc", "checkout", "--quiet"], repo)


def test_gate_fails_when_the_task_changed(own_stage_repo: Path) -> None:
    repo = own_stage_repo
    params = yaml.safe_load(yaml.safe_dump(PARAMS))
    params["data"]["task"] = "multiclass"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        done = run(["modelci", "pr", "gate", "--base", "HEAD"], repo, check=False)
        assert done.returncode == 1
        assert "gate FAILED: data.task changed from 'binary' to 'multiclass'" in done.stdout
        allowed = run(["modelci", "pr", "gate", "--base", "HEAD", "--allow-task-change"], repo)
        assert "data.task changed from 'binary' to 'multiclass': allowed" in allowed.stdout
        assert "(new, no baseline;" in allowed.stdout

        run(["modelci", "pr", "report", "--base", "HEAD", "--out", "report"], repo)
        markdown = (repo / "report/report.md").read_text()
        assert "modelci report: gate FAILED: data.task changed" in markdown
        assert "The task or target changed" in markdown
        assert "improved" not in markdown
    finally:
        run(["git", "checkout", "--", "."], repo)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_check_lock_refuses_dvc_outputs_committed_to_git(tmp_path: Path) -> None:
    """Issue 8: a later stage fails on the first `dvc repro`, DVC drops the .gitignore entries it
    had written, and `git add -A` commits the model and the prepared data into git."""
    repo = make_model_repo(tmp_path / "repo")
    run(["dvc", "init", "-q", "-f"], repo)
    unreachable = f"http://127.0.0.1:{_closed_port()}"
    failed = run(["dvc", "repro"], repo, check=False, MLFLOW_TRACKING_URI=unreachable)
    assert failed.returncode != 0
    assert (repo / "models/model.skops").is_file()
    assert "MLflow tracking server" in failed.stderr
    assert "is unreachable" in failed.stderr
    assert not (repo / "reports/predictions.parquet").exists()  # evaluate wrote nothing
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "first run"], repo)
    tracked = run(["git", "ls-files", "models", "data/prepared"], repo).stdout.split()
    assert "models/model.skops" in tracked, "the scenario no longer reproduces with this DVC"

    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "second run"], repo)
    done = run(["modelci", "pr", "check-lock"], repo, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "modelci pr check-lock: error: DVC outputs tracked by git: data/prepared/test.parquet, "
        "data/prepared/train.parquet, models/model.skops"
    )
    assert "  tracked by git: models/model.skops" in done.stderr
    result = json.loads((repo / ".modelci/lock-check.json").read_text())
    assert result["git_tracked_outputs"] == [
        "data/prepared/test.parquet",
        "data/prepared/train.parquet",
        "models/model.skops",
        "models/onnx/manifest.json",  # the export stage ran before evaluate failed
        "models/onnx/model.onnx",
    ]

    # DVC skips the stages that are up to date and never writes their ignore rules again:
    # untrack the files and re-run (or write the rules by hand).
    run(["git", "rm", "-r", "-q", "--cached", "models", "data/prepared"], repo)
    run(["dvc", "repro", "--quiet", "--force"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "untrack outputs"], repo)
    clean = run(["modelci", "pr", "check-lock"], repo, check=False)
    assert "tracked by git" not in clean.stderr, textwrap.shorten(clean.stderr, 400)


def test_serve_register_and_promote_need_only_the_schema(own_stage_repo: Path) -> None:
    """params.yaml holds data:, the user's mytrain: and gate: only; tracking and registry take
    their defaults (issue 8: `data: Field required (and 4 more)`, `mytrain: unknown key`)."""
    repo = own_stage_repo
    row = {"x1": 1.5, "x2": 0.5}
    server = start_serve(repo, "--model", "models/model.skops")
    try:
        status, body = post_json(server.port, "/predict", row)
        assert status == 200, body
        assert body["predictions"] == [1]
    finally:
        server.stop()
        server.cleanup()

    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    registered = run(
        ["modelci", "registry", "register", "--test", "data/test.parquet"], repo, **store
    )
    assert "register: registered version 1" in registered.stdout
    promoted = run(["modelci", "registry", "promote", "--test", "data/test.parquet"], repo, **store)
    assert "promote: version 1 is @champion" in promoted.stdout
    champion = start_serve(repo, **store)  # models:/modelci-model@champion, the defaults
    try:
        status, body = post_json(champion.port, "/predict", [row, {"x1": -2.0, "x2": -1.0}])
        assert status == 200, body
        assert body["predictions"] == [1, 0]
    finally:
        champion.stop()
        champion.cleanup()

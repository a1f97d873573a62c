"""``modelci monitor plan`` and one monitoring issue per model: the scheduled monitor checks every
project (or the named ones), each with its own window, and each project's drift opens, updates and
closes only its own model's issue. The root project keeps the issue a single-project repository
already had (its marker is unchanged), so an upgrade finds the open issue again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelci.cli import main
from modelci.drift.github import marker
from modelci.monitor.plan import MonitorPlanError, plan
from tests.unit.test_affected import write_project
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN

pytestmark = pytest.mark.unit

WINDOW = "dvc:monitoring/{project}/predictions.jsonl"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The root project (churn-model, as before the upgrade) and fraud added in a folder."""
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "churn"\n')
    write_project(root, ".", model="churn-model")
    write_project(root, "models/fraud", model="fraud-model")
    return root


def test_every_project_is_monitored_with_its_own_window_and_retrain_branch(repo: Path) -> None:
    matrix = plan(repo, window=WINDOW, labels="https://labels.example/{project}.csv")
    assert [
        (e["path"], e["name"], e["registered_model"], e["window"], e["labels"], e["retrain_branch"])
        for e in matrix["include"]
    ] == [
        (".", "churn", "churn-model", "dvc:monitoring/churn/predictions.jsonl",
         "https://labels.example/churn.csv", "modelci/retrain"),
        ("models/fraud", "fraud", "fraud-model", "dvc:monitoring/fraud/predictions.jsonl",
         "https://labels.example/fraud.csv", "modelci/retrain-fraud"),
    ]  # fmt: skip


def test_one_window_for_several_projects_is_refused_naming_the_input(repo: Path) -> None:
    with pytest.raises(MonitorPlanError, match=r"window 'dvc:log.jsonl' has no \{project\}"):
        plan(repo, window="dvc:log.jsonl")
    with pytest.raises(MonitorPlanError, match=r"labels 'l.csv' has no \{project\}"):
        plan(repo, window=WINDOW, labels="l.csv")
    # Naming one project: its window needs no placeholder.
    (fraud,) = plan(repo, names="fraud", window="dvc:log.jsonl")["include"]
    assert (fraud["name"], fraud["window"]) == ("fraud", "dvc:log.jsonl")


def test_an_unknown_project_name_is_refused_listing_the_known_ones(repo: Path) -> None:
    with pytest.raises(MonitorPlanError, match=r"no project named frod .*has: churn, fraud"):
        plan(repo, names="churn, frod", window=WINDOW)


def test_a_single_project_caller_keeps_its_window_and_branch(tmp_path: Path) -> None:
    write_project(tmp_path, ".", model="titanic-survival")
    (only,) = plan(tmp_path, window="https://logs.example/predictions.jsonl")["include"]
    assert (only["path"], only["window"], only["labels"], only["retrain_branch"]) == (
        ".", "https://logs.example/predictions.jsonl", "", "modelci/retrain",
    )  # fmt: skip


def test_the_cli_writes_the_matrix_and_the_summary(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["monitor", "plan", "--root", str(repo), "--window", WINDOW]) == 0
    pairs = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert pairs["count"] == "2"
    names = [entry["name"] for entry in json.loads(pairs["matrix"])["include"]]
    assert names == ["churn", "fraud"]
    assert "| fraud | fraud-model | dvc:monitoring/fraud/predictions.jsonl |" in summary.read_text()
    assert main(["monitor", "plan", "--root", str(repo), "--window", "w.jsonl"]) == 2
    assert "error: window 'w.jsonl' has no {project} placeholder" in capsys.readouterr().err


def _issue_step(project: Path, drifted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``modelci monitor issue`` as monitor-project.yml runs it: in the project's folder, with
    its own params.yaml naming the registered model."""
    drift = project / ".modelci" / "drift"
    drift.mkdir(parents=True, exist_ok=True)
    (drift / "drift.json").write_text(json.dumps({"drift": drifted, "retrain": False}))
    (drift / "drift.md").write_text(f"report of {project.name}: drift={drifted}")
    monkeypatch.chdir(project)
    assert main(["monitor", "issue", "--drift", str(drift / "drift.json"), "--repo", "o/r"]) == 0


def test_each_model_keeps_its_own_issue_and_the_root_keeps_the_old_one(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeGitHub(tmp_path / "stubs", "o/r") as fake:
        monkeypatch.setenv("MODELCI_GITHUB_API_URL", fake.url)
        monkeypatch.setenv("GITHUB_TOKEN", FAKE_GITHUB_TOKEN)
        # The issue the single-project monitor opened before the upgrade: its marker is the
        # registered model's, which the root project keeps.
        fake.state.issues.append(
            {"number": 7, "user": "github-actions[bot]", "state": "open", "updates": 0,
             "title": "Production monitoring: drift detected for churn-model",
             "body": f"{marker('churn-model')}\nold report", "labels": ["modelci-monitor"]}
        )  # fmt: skip
        fraud = repo / "models" / "fraud"
        _issue_step(fraud, True, monkeypatch)  # fraud drifts: its own issue, churn's untouched
        (new,) = [issue["number"] for issue in fake.state.issues if issue["number"] != 7]
        by_number = {issue["number"]: issue for issue in fake.state.issues}
        assert by_number[7]["body"].endswith("old report")
        assert by_number[7]["updates"] == 0
        assert by_number[new]["title"] == "Production monitoring: drift detected for fraud-model"
        assert by_number[new]["body"].startswith(marker("fraud-model"))
        _issue_step(repo, True, monkeypatch)  # churn drifts again: the old issue is updated
        by_number = {issue["number"]: issue for issue in fake.state.issues}
        assert "report of repo: drift=True" in by_number[7]["body"]
        assert (by_number[7]["updates"], by_number[new]["updates"]) == (1, 0)
        _issue_step(repo, False, monkeypatch)  # churn is clean: only its issue closes
        by_number = {issue["number"]: issue for issue in fake.state.issues}
        assert (by_number[7]["state"], by_number[new]["state"]) == ("closed", "open")
        _issue_step(fraud, False, monkeypatch)
        assert {issue["state"] for issue in fake.state.issues} == {"closed"}
        assert len(fake.state.issues) == 2

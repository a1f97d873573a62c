"""The monitor and retrain workflows under act, against ``fake_github`` on 127.0.0.1.

One model repository, three scheduled-monitor runs (``workflow_dispatch`` of this repository's
thin caller): a shifted window opens the model's issue, a second shifted window updates the same
issue, a held-out sample of the training distribution closes it. A second repository whose
``data.source`` is a CSV file and whose params set ``monitor.retrain: true`` gets one run on a
labelled shifted window: the issue is opened, the retrain workflow appends the labelled window,
reproduces the pipeline, pushes a branch and opens a pull request whose body is the modelci report.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import run
from tests.workflows import harness
from tests.workflows.conftest import REPO_SLUG, ModelRepo
from tests.workflows.fake_github import BOT, FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN
from tests.workflows.harness import REMOTE_URL

pytestmark = [pytest.mark.workflows, pytest.mark.slow]

CALLER = "scheduled-monitor.yml"
MODEL = "titanic-survival"


def shifted(test: pd.DataFrame) -> pd.DataFrame:
    """Older passengers paying more, a third of them from a port the training data never had."""
    out = test.copy()
    out["age"] = out["age"] + 25
    out["fare"] = out["fare"] * 3
    out.loc[out.index[::3], "embarked"] = "Dublin"
    return out


def older(test: pd.DataFrame) -> pd.DataFrame:
    """Older passengers paying more, within the schema's bounds: rows retraining may append."""
    out = test.copy()
    out["age"] = (out["age"] + 25).clip(upper=100)
    out["fare"] = (out["fare"] * 3).clip(upper=1000)
    return out


def write_log(frame: pd.DataFrame, target: str, path: Path) -> Path:
    """The frame as the serving prediction log writes it: one record per row, with request ids."""
    features = frame.drop(columns=[target])
    with path.open("w", encoding="utf-8") as out:
        for index, row in enumerate(json.loads(features.to_json(orient="records"))):
            out.write(json.dumps({"ts": 1.0, "request_id": f"req-{index}", "input": row}) + "\n")
    return path


def write_labels(frame: pd.DataFrame, target: str, path: Path) -> Path:
    ids = [f"req-{index}" for index in range(len(frame))]
    pd.DataFrame({"request_id": ids, target: frame[target].to_numpy()}).to_csv(path, index=False)
    return path


def dispatch(window: Path, labels: Path | None = None) -> dict[str, Any]:
    inputs = {"window": window.as_uri(), "labels": labels.as_uri() if labels else ""}
    repository = {"full_name": REPO_SLUG, "name": "example-model", "default_branch": "main"}
    return {"inputs": inputs, "ref": "refs/heads/main", "repository": repository}


def _run(repo: Path, event: dict[str, Any], env: harness.ActEnv, work: Path) -> harness.ActRun:
    return harness.run_act(
        repo,
        "workflow_dispatch",
        event,
        repo / ".github" / "workflows" / CALLER,
        env,
        work=work,
        secrets={"GITHUB_TOKEN": TOKEN},
    )


@dataclass
class Monitored:
    stub_root: Path
    runs: list[harness.ActRun]
    issues_after: list[list[dict[str, Any]]]


def _issues(stub_root: Path) -> list[dict[str, Any]]:
    path = stub_root / "github" / "issues.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


@pytest.fixture(scope="module")
def monitored(
    model_repo: ModelRepo, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Monitored:
    work = tmp_path_factory.mktemp("monitor")
    repo = model_repo.clone("main", work / "repo")
    test = pd.read_parquet(model_repo.origin / "data" / "prepared" / "test.parquet")
    drifted = write_log(shifted(test), "survived", work / "predictions.jsonl")
    clean = work / "heldout.csv"
    test.to_csv(clean, index=False)
    stub_root = model_repo.stub_root(work / "stubs")
    runs, issues_after = [], []
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, github_api=github.url)
        for number, window in enumerate((drifted, drifted, clean)):
            runs.append(_run(repo, dispatch(window), env, work / f"act-{number}"))
            issues_after.append(_issues(stub_root))
    return Monitored(stub_root, runs, issues_after)


def test_a_drifted_window_opens_one_issue_with_the_report(monitored: Monitored) -> None:
    run = monitored.runs[0]
    assert run.result("check") == "success", run.explain()
    assert "DRIFT: 3 of 7 features drifted" in run.output("check")
    (issue,) = monitored.issues_after[0]
    assert issue["state"] == "open"
    assert issue["user"] == BOT
    assert issue["labels"] == ["modelci-monitor"]
    assert MODEL in issue["title"]
    assert f"<!-- modelci-monitor: {MODEL} -->" in issue["body"]
    assert "| age | **drift** |" in issue["body"]
    assert "| embarked | **drift** |" in issue["body"]
    assert "| gender | ok |" in issue["body"]
    assert any("**DRIFT:" in text for text in run.summaries()), run.summaries()
    assert run.result("retrain") is None  # monitor.retrain is false here


def test_a_second_drifted_window_updates_the_same_issue(monitored: Monitored) -> None:
    run = monitored.runs[1]
    assert run.result("check") == "success", run.explain()
    (issue,) = monitored.issues_after[1]
    assert issue["number"] == monitored.issues_after[0][0]["number"]
    assert (issue["state"], issue["updates"]) == ("open", 1)
    posts = [
        r
        for r in harness.requests(monitored.stub_root)
        if r["method"] == "POST" and r["path"] == f"/repos/{REPO_SLUG}/issues"
    ]
    assert len(posts) == 1


def test_a_clean_window_closes_the_issue_with_a_comment(monitored: Monitored) -> None:
    run = monitored.runs[2]
    assert run.result("check") == "success", run.explain()
    (issue,) = monitored.issues_after[2]
    assert (issue["state"], issue["state_reason"]) == ("closed", "completed")
    (comment,) = harness.comments(monitored.stub_root)
    assert comment["target"] == f"pr/{issue['number']}"  # issues and PRs share comments
    assert "closing" in comment["body"]
    assert any("no drift" in text for text in run.summaries()), run.summaries()


@dataclass
class Retrained:
    run: harness.ActRun
    stub_root: Path
    remote: Path
    rows_before: int
    added: int


def _csv_source_repo(model_repo: ModelRepo, root: Path) -> Path:
    """The model repository with its data as a CSV file in git and monitor.retrain on."""
    repo = model_repo.clone("main", root / "origin")
    from modelci.data.sources import read_table

    raw = read_table(model_repo.origin / "data" / "titanic.source.yaml")
    raw.to_csv(repo / "data" / "raw.csv", index=False)
    params = (repo / "params.yaml").read_text(encoding="utf-8")
    params = params.replace("source: data/titanic.source.yaml", "source: data/raw.csv", 1)
    params += "\nmonitor:\n  retrain: true\n  min_rows: 100\n"
    (repo / "params.yaml").write_text(params, encoding="utf-8")
    run(["dvc", "repro", "--quiet"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "data as CSV; monitor.retrain: true"], repo)
    return repo


@pytest.fixture(scope="module")
def retrained(
    model_repo: ModelRepo, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Retrained:
    work = tmp_path_factory.mktemp("retrain")
    repo = _csv_source_repo(model_repo, work)
    remote = work / "remote.git"
    run(["git", "clone", "-q", "--bare", str(repo), str(remote)], work)
    # Pushes to the GitHub remote land in the local bare repository.
    run(["git", "config", f"url.{remote.as_uri()}.pushInsteadOf", REMOTE_URL], repo)
    stub_root = work / "stubs"
    shutil.copytree(repo / ".dvc" / "cache", stub_root / "cache" / "dvc-Linux-warm" / "cache")
    test = pd.read_parquet(repo / "data" / "prepared" / "test.parquet")
    window = write_log(older(test), "survived", work / "predictions.jsonl")
    labels = write_labels(test, "survived", work / "labels.csv")
    rows_before = len(pd.read_csv(repo / "data" / "raw.csv"))
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, github_api=github.url)
        act_run = _run(repo, dispatch(window, labels), env, work / "act")
    return Retrained(act_run, stub_root, remote, rows_before, len(test))


def test_retraining_opens_a_pull_request_whose_body_is_the_modelci_report(
    retrained: Retrained,
) -> None:
    run_ = retrained.run
    assert run_.results() | {"monitor": None} == {
        "monitor": None,
        "check": "success",
        "retrain": "success",
    }, run_.explain()
    (issue,) = _issues(retrained.stub_root)
    assert issue["state"] == "open"
    pulls = json.loads((retrained.stub_root / "github" / "pulls.json").read_text("utf-8"))
    (pull,) = pulls
    assert (pull["head"], pull["base"], pull["user"]) == ("modelci/retrain", "main", BOT)
    body = pull["body"]
    # The normal modelci report (`modelci pr report --base HEAD`): its marker, headline, metrics.
    assert body.startswith("<!-- modelci-report -->\n## ")
    assert "modelci report: gate" in body.split("\n")[1]
    assert "### Metrics" in body
    assert "| **accuracy** |" in body
    assert "Retrain on production data" in body


def test_the_retraining_branch_holds_the_appended_window_and_its_dvc_lock(
    retrained: Retrained,
) -> None:
    show = run(["git", "show", "modelci/retrain:data/raw.csv"], retrained.remote).stdout
    assert len(show.strip().splitlines()) - 1 == retrained.rows_before + retrained.added
    changed = run(
        ["git", "diff", "--name-only", "main", "modelci/retrain"], retrained.remote
    ).stdout.split()
    assert {"data/raw.csv", "dvc.lock", "metrics.json"} <= set(changed)

"""The monitor and retrain workflows under act, against ``fake_github`` on 127.0.0.1.

One model repository, three scheduled-monitor runs (``workflow_dispatch`` of this repository's
thin caller): a shifted window opens the model's issue, a second shifted window updates the same
issue, a held-out sample of the training distribution closes it. A second repository whose
``data.source`` is a CSV file and whose params set ``monitor.retrain: true`` gets one run on a
labelled shifted window: the issue is opened, the retrain workflow appends the labelled window,
reproduces the pipeline, pushes a branch and opens a pull request whose body is the modelci report.

The retraining pull request's CI follows GitHub's rule (``fake_github.started_runs``): events of
the workflow's ``GITHUB_TOKEN`` start no workflow, so the caller's ``ci-workflow: pr.yml`` is
dispatched on the branch, and that dispatched run of ``pr.yml`` is run here on the pushed head
commit. Two more retrain runs (a caller of retrain.yml alone): with a GitHub App's secrets the App's
token opens the PR (GitHub starts its ``pull_request`` run); with neither, no run is started and
the PR body and the job summary say so.
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
from tests.workflows.conftest import (
    REPO_SLUG,
    ModelRepo,
    keep_artifact,
    project_name,
    warm_dvc_cache,
)
from tests.workflows.fake_github import APP_BOT, BOT, FakeGitHub, StartedRun, started_runs
from tests.workflows.harness import ACT_REF, OWNER_REPO, REMOTE_URL
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN

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


def _run(
    repo: Path,
    event: dict[str, Any],
    env: harness.ActEnv,
    work: Path,
    caller: str = CALLER,
    secrets: dict[str, str] | None = None,
) -> harness.ActRun:
    return harness.run_act(
        repo,
        "workflow_dispatch",
        event,
        repo / ".github" / "workflows" / caller,
        env,
        work=work,
        secrets={"GITHUB_TOKEN": TOKEN, **(secrets or {})},
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
    # The plan of a single-project repository: its one (root) project, the caller's window as is.
    assert run.result("plan") == "success", run.explain()
    assert f": monitored as {MODEL} (file://" in run.output("plan")
    assert "DRIFT: 3 of 7 features drifted" in run.output("check")
    (issue,) = monitored.issues_after[0]
    assert issue["state"] == "open"
    assert issue["user"] == BOT
    assert issue["labels"] == ["modelci-monitor"]
    assert MODEL in issue["title"]
    # The marker a single-project monitor wrote before the plan: an open issue is found again.
    assert issue["body"].startswith(f"<!-- modelci-monitor: {MODEL} -->\n")
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
    started: list[StartedRun]
    head: str
    ci: harness.ActRun | None  # the run of pr.yml GitHub starts on the retraining head, if any


def _ci_on_the_head(
    started: StartedRun, remote: Path, env: harness.ActEnv, work: Path
) -> harness.ActRun:
    """Run ``pr.yml`` as GitHub starts it from ``started`` (a dispatch), on the branch's head."""
    repo = work / "head"
    run(["git", "clone", "-q", "--branch", started.ref, str(remote), str(repo)], work)
    run(["git", "remote", "set-url", "origin", REMOTE_URL], repo)
    repository = {"full_name": REPO_SLUG, "name": "example-model", "default_branch": "main"}
    event = {"inputs": started.inputs, "ref": f"refs/heads/{started.ref}", "repository": repository}
    assert started.workflow is not None
    return harness.run_act(
        repo, "workflow_dispatch", event, repo / ".github" / "workflows" / started.workflow,
        env, work=work / "act-ci",
    )  # fmt: skip


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
def csv_source(model_repo: ModelRepo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CSV-source repository, reproduced once for the module's three retraining runs;
    read-only: each run works in its own copy (``_copy``)."""
    return _csv_source_repo(model_repo, tmp_path_factory.mktemp("csv-source"))


def _copy(csv_source: Path, root: Path) -> Path:
    """A copy of the reproduced CSV-source repository (its git history and DVC cache too)."""
    return Path(shutil.copytree(csv_source, root / "origin", symlinks=True))


@pytest.fixture(scope="module")
def retrained(
    csv_source: Path, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Retrained:
    work = tmp_path_factory.mktemp("retrain")
    repo = _copy(csv_source, work)
    remote = work / "remote.git"
    run(["git", "clone", "-q", "--bare", str(repo), str(remote)], work)
    # Pushes to the GitHub remote land in the local bare repository.
    run(["git", "config", f"url.{remote.as_uri()}.pushInsteadOf", REMOTE_URL], repo)
    stub_root = work / "stubs"
    warm_dvc_cache(repo / ".dvc" / "cache", stub_root, project_name(repo))
    test = pd.read_parquet(repo / "data" / "prepared" / "test.parquet")
    window = write_log(older(test), "survived", work / "predictions.jsonl")
    labels = write_labels(test, "survived", work / "labels.csv")
    rows_before = len(pd.read_csv(repo / "data" / "raw.csv"))
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, github_api=github.url)
        act_run = _run(repo, dispatch(window, labels), env, work / "act")
        started = started_runs(stub_root)
        head = run(["git", "rev-parse", "modelci/retrain"], remote).stdout.strip()
        dispatched = [s for s in started if s.event == "workflow_dispatch"]
        ci = _ci_on_the_head(dispatched[0], remote, env, work) if dispatched else None
        if ci is not None:
            keep_artifact(stub_root, 2001)
    return Retrained(act_run, stub_root, remote, rows_before, len(test), started, head, ci)


def test_retraining_opens_a_pull_request_whose_body_is_the_modelci_report(
    retrained: Retrained,
) -> None:
    run_ = retrained.run
    assert run_.results() | {"monitor": None, "project": None} == {
        "monitor": None,
        "project": None,
        "plan": "success",
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


CI_JOBS = ("lint", "test", "model", "all-green")


def test_the_retraining_pr_gets_its_ci_on_the_head_commit(retrained: Retrained) -> None:
    """The PR was opened with GITHUB_TOKEN, which starts no pull_request run: the monitor's
    caller names ci-workflow: pr.yml, so pr.yml is dispatched on the branch, and that run checks
    the pushed head commit, records the PR's number and passes the required all-green check."""
    (pull,) = json.loads((retrained.stub_root / "github" / "pulls.json").read_text("utf-8"))
    assert pull["opened_with"] == "workflow"
    number = {"pr-number": str(pull["number"])}  # issues and PRs share numbers: not always 1
    assert retrained.started == [
        StartedRun("workflow_dispatch", "modelci/retrain", None, "pr.yml", number)
    ]
    assert f"started with `workflow_dispatch` on commit `{retrained.head[:12]}`" in pull["body"]
    ci = retrained.ci
    assert ci is not None
    assert {job: ci.result(job) for job in CI_JOBS} == dict.fromkeys(
        CI_JOBS, "success"
    ), ci.explain()
    kept = retrained.stub_root / "artifacts" / "runs" / "2001" / "modelci-report"
    metadata = json.loads((kept / "metadata.json").read_text(encoding="utf-8"))
    assert (metadata["head_sha"], metadata["pr_number"]) == (retrained.head, pull["number"])


def _retrain_caller() -> str:
    """A caller of retrain.yml alone (no monitor check first), passing the App's secrets."""
    uses = f"{OWNER_REPO}/.github/workflows/retrain.yml@{ACT_REF}"
    return f"""name: retrain-now
on:
  workflow_dispatch:
    inputs:
      window: {{type: string, default: ""}}
      labels: {{type: string, default: ""}}
permissions: {{}}
jobs:
  retrain:
    permissions:
      contents: write
      pull-requests: write
      actions: write
    uses: {uses}
    with:
      window: ${{{{ inputs.window }}}}
      labels: ${{{{ inputs.labels }}}}
    secrets:
      MODELCI_APP_CLIENT_ID: ${{{{ secrets.MODELCI_APP_CLIENT_ID }}}}
      MODELCI_APP_PRIVATE_KEY: ${{{{ secrets.MODELCI_APP_PRIVATE_KEY }}}}
"""


@dataclass
class Direct:
    run: harness.ActRun
    stub_root: Path
    pull: dict[str, Any]
    started: list[StartedRun]
    head: str


def _retrain_directly(
    csv_source: Path, modelci_src: Path, work: Path, secrets: dict[str, str]
) -> Direct:
    repo = _copy(csv_source, work)
    (repo / ".github" / "workflows" / "retrain-now.yml").write_text(_retrain_caller(), "utf-8")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "a caller of retrain.yml"], repo)
    remote = work / "remote.git"
    run(["git", "clone", "-q", "--bare", str(repo), str(remote)], work)
    run(["git", "config", f"url.{remote.as_uri()}.pushInsteadOf", REMOTE_URL], repo)
    stub_root = work / "stubs"
    warm_dvc_cache(repo / ".dvc" / "cache", stub_root, project_name(repo))
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, github_api=github.url)
        act_run = _run(repo, {"inputs": {}}, env, work / "act", "retrain-now.yml", secrets)
    pulls = json.loads((stub_root / "github" / "pulls.json").read_text("utf-8"))
    head = run(["git", "rev-parse", "modelci/retrain"], remote).stdout.strip()
    return Direct(act_run, stub_root, pulls[0], started_runs(stub_root), head)


@pytest.fixture(scope="module")
def by_app(csv_source: Path, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Direct:
    secrets = {"MODELCI_APP_CLIENT_ID": "Iv23liFAKE", "MODELCI_APP_PRIVATE_KEY": "fake-pem"}
    return _retrain_directly(csv_source, modelci_src, tmp_path_factory.mktemp("app"), secrets)


@pytest.fixture(scope="module")
def by_nothing(
    csv_source: Path, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Direct:
    return _retrain_directly(csv_source, modelci_src, tmp_path_factory.mktemp("none"), {})


def test_with_an_app_its_token_opens_the_pr_so_github_runs_the_pr_workflows(by_app: Direct) -> None:
    assert by_app.run.result("retrain") == "success", by_app.run.explain()
    (call,) = harness.read_calls(by_app.stub_root, "create-github-app-token")
    assert (call["client_id"], call["contents"], call["pull_requests"]) == (
        "Iv23liFAKE",
        "write",
        "write",
    )
    assert (by_app.pull["user"], by_app.pull["opened_with"]) == (APP_BOT, "installation")
    assert by_app.started == [StartedRun("pull_request", "modelci/retrain", by_app.pull["number"])]
    assert f"workflows run on commit `{by_app.head[:12]}`" in by_app.pull["body"]
    # The token is masked in what the steps print (act's JSON log keeps the add-mask argument).
    assert "ghs_fake_app_installation_token" not in by_app.run.output()


def test_with_neither_no_ci_is_claimed_and_the_pr_and_summary_say_so(by_nothing: Direct) -> None:
    run_ = by_nothing.run
    assert run_.result("retrain") == "success", run_.explain()
    assert harness.read_calls(by_nothing.stub_root, "create-github-app-token") == []
    assert by_nothing.pull["opened_with"] == "workflow"
    assert by_nothing.started == []  # GitHub would start no workflow for this PR
    warning = "**No CI runs on this pull request.**"
    assert warning in by_nothing.pull["body"]
    assert any(warning in text for text in run_.summaries()), run_.summaries()
    assert "CI:**" not in by_nothing.pull["body"]

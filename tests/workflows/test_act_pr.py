"""End to end under act: this repository's pull-request workflows on a model repository.

Pull request #7 first improves the model (every job passes; the comment workflow creates the
comment with the metric diff and the plots), then a second push regresses it beyond the gate's
tolerance (the model job fails; a new comment names the metric and the first one is deleted, so
the pull request still has one). The GitHub API is ``fake_github`` on 127.0.0.1. Other pull
requests: a stale dvc.lock, and a title and branch name full of shell metacharacters and ``${{ }}``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelci.registry.register import find_sha256
from tests.workflows import harness
from tests.workflows.conftest import (
    REPO_SLUG,
    ModelRepo,
    keep_artifact,
    project_name,
    pull_request_event,
    workflow_run_event,
)
from tests.workflows.fake_github import BOT, FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN

pytestmark = [pytest.mark.workflows, pytest.mark.slow]

CI_JOBS = ("lint", "test", "plan", "model", "report", "all-green")
ZWSP = "\u200b"
# What act passes as github.token (GitHub provides one to every run).


def conclusion(run: harness.ActRun) -> str:
    return "success" if run.result("all-green") == "success" else "failure"


def plain(markdown: str) -> str:
    """Markdown as a reader sees the text: no zero-width spaces, no backslash escapes."""
    return re.sub(r"\\(.)", r"\1", markdown.replace(ZWSP, ""))


@dataclass
class PullRequest7:
    stub_root: Path
    first: harness.ActRun
    first_comment: harness.ActRun
    comments_after_first: list[dict[str, Any]]
    second: harness.ActRun
    second_comment: harness.ActRun

    def cml_calls(self) -> list[dict[str, Any]]:
        return harness.read_calls(self.stub_root, "cml")

    def comment_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.cml_calls() if c["args"][0] == "comment"]


@pytest.fixture(scope="module")
def pr7(
    model_repo: ModelRepo, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> PullRequest7:
    work = tmp_path_factory.mktemp("pr7")
    stub_root = model_repo.stub_root(work / "stubs")
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, github_api=github.url)
        return _run_pr7(model_repo, modelci_src, work, stub_root, env)


def _run_pr7(
    model_repo: ModelRepo, modelci_src: Path, work: Path, stub_root: Path, env: harness.ActEnv
) -> PullRequest7:
    default_branch = model_repo.clone("main", work / "main")
    comment_workflow = modelci_src / ".github" / "workflows" / "pr-comment.yml"

    def pull_request(branch: str, run_id: int) -> harness.ActRun:
        repo = model_repo.clone(branch, work / branch)
        event = pull_request_event(model_repo, 7, branch, title=f"Tune the model ({branch})")
        run = harness.run_act(
            repo,
            "pull_request",
            event,
            repo / ".github" / "workflows" / "pr.yml",
            env,
            work=work / f"act-{run_id}",
        )
        keep_artifact(stub_root, run_id)
        keep_artifact(stub_root, run_id, f"modelci-report-{project_name(repo)}")
        return run

    def comment(branch: str, run_id: int, pr_run: harness.ActRun) -> harness.ActRun:
        event = workflow_run_event(model_repo, run_id, branch, 7, conclusion(pr_run))
        return harness.run_act(
            default_branch,
            "workflow_run",
            event,
            comment_workflow,
            env,
            work=work / f"act-comment-{run_id}",
            secrets={"GITHUB_TOKEN": TOKEN},
        )

    first = pull_request("improve", 1001)
    first_comment = comment("improve", 1001, first)
    after_first = copy.deepcopy(harness.comments(stub_root))
    second = pull_request("regress", 1002)
    second_comment = comment("regress", 1002, second)
    return PullRequest7(stub_root, first, first_comment, after_first, second, second_comment)


def test_improving_pr_passes_every_job(pr7: PullRequest7) -> None:
    run = pr7.first
    assert {job: run.result(job) for job in CI_JOBS} == dict.fromkeys(
        CI_JOBS, "success"
    ), run.explain()
    assert run.returncode == 0, run.explain()


def test_improving_pr_uploads_the_plan_the_model_report_and_the_merged_report(
    pr7: PullRequest7, model_repo: ModelRepo
) -> None:
    project = project_name(model_repo.origin)
    uploads = harness.read_calls(pr7.stub_root, "upload-artifact")
    # the first run's uploads, in the order the plan, model and report jobs make them
    first = {call["name"]: call["files"] for call in uploads[:3]}
    assert list(first) == ["modelci-report.plan", f"modelci-report-{project}", "modelci-report"]
    assert first["modelci-report.plan"] == ["plan.json"]
    model_files = set(first[f"modelci-report-{project}"])
    assert {"report.md", "report.json", "verdict.json", "stages.json"} <= model_files
    assert {"report.md", "summary.md", "metadata.json"} <= set(first["modelci-report"])
    # The default report carries its plots as Mermaid in report.md: no PNG is uploaded with it.
    assert not [name for files in first.values() for name in files if name.endswith(".png")]
    runs = pr7.stub_root / "artifacts" / "runs" / "1001"
    metadata = json.loads((runs / "modelci-report" / "metadata.json").read_text("utf-8"))
    assert metadata["pr_number"] == 7
    assert metadata["head_sha"] == model_repo.shas["improve"]
    verdict = json.loads((runs / f"modelci-report-{project}" / "verdict.json").read_text("utf-8"))
    assert verdict["passed"] is True
    # one project: the merged artifact holds its report.json, where release reviewed reads it
    reviewed = (runs / "modelci-report" / "report.json").read_bytes()
    assert reviewed == (runs / f"modelci-report-{project}" / "report.json").read_bytes()
    assert find_sha256(json.loads(reviewed)) is not None
    # the plan the matrix came from: the root project, affected by the params change
    plan = json.loads(
        (pr7.stub_root / "artifacts" / "modelci-report.plan" / "plan.json").read_text("utf-8")
    )
    assert plan["count"] == 1
    assert plan["matrix"] == {"include": [{"path": ".", "name": project}]}


def test_the_dvc_cache_is_keyed_on_the_project_and_its_dvc_lock_and_restored(
    pr7: PullRequest7, model_repo: ModelRepo
) -> None:
    project = project_name(model_repo.origin)
    restore = harness.read_calls(pr7.stub_root, "cache")[0]
    assert re.fullmatch(rf"dvc-Linux-{project}-[0-9a-f]{{64}}", restore["key"]), restore
    assert restore["restore_keys"] == [f"dvc-Linux-{project}-"]
    assert restore["matched"] == f"dvc-Linux-{project}-warm"
    assert restore["paths"] == ["./.dvc/cache"]


def test_the_report_reaches_the_job_summary(pr7: PullRequest7) -> None:
    for run in (pr7.first, pr7.second):
        assert run.step_result("model", "Job summary") == "success"
        assert run.step_result("report", "Job summary") == "success"
        summaries = run.summaries()
        # the model job's report, and the report job's merged text with that report in its section
        reports = [text for text in summaries if "| **accuracy** | 0.7989 |" in text]
        assert len(reports) == 2, summaries
        assert any("<details>" in text for text in reports), summaries


def test_lint_and_tests_ran_the_project_tools(pr7: PullRequest7) -> None:
    lint = [name for name, _ in pr7.first.jobs["lint"].steps]
    assert lint[-5:] == [
        "ruff (PEP 8, pyflakes, imports, bugbear, bandit)",
        "black",
        "mypy",
        "actionlint (with shellcheck)",
        "zizmor",
    ]
    assert "Success: no issues found" in pr7.first.output("lint")
    assert "1 passed" in pr7.first.output("test")
    uv_syncs = harness.read_calls(pr7.stub_root, "uv")
    assert {tuple(call["args"]) for call in uv_syncs} == {
        ("sync", "--frozen", "--all-extras", "--python", "3.11")
    }


def test_comment_is_created_with_the_diff_and_the_plots(pr7: PullRequest7) -> None:
    run = pr7.first_comment
    assert run.result("comment") == "success", run.explain()
    (comment,) = pr7.comments_after_first
    assert (comment["target"], comment["user"]) == ("pr/7", BOT)
    body = plain(comment["body"])
    assert "modelci report: gate passed" in body
    # the base's predictions came from the DVC cache: a paired interval per gated metric
    assert re.search(
        r"\| \*\*accuracy\*\* \| 0\.7989 \| 0\.8062 \| \+0\.0072 \| "
        r"[+-]0\.\d{4} to [+-]0\.\d{4} \(95%\) \| (no \(noise\)|\*\*yes\*\*), p=[0-9.e-]+ \| "
        r"▲ improved \|",
        body,
    ), body[:3000]
    assert "_Intervals: paired bootstrap over 552 test rows, 2000 resamples;" in body
    slices = body.split("### Slices")[1].split("### Params")[0]
    assert "| slice | rows | accuracy base → PR |" in slices
    assert re.search(r"\| gender = female \| 114 → 114 \| 0\.\d{4} → 0\.\d{4}", slices), slices
    assert "| train.estimator_params.max_leaf_nodes | 15 | 31 |" in body
    create = pr7.comment_calls()[0]
    assert create["done"] == "created"
    assert create["args"][:2] == ["comment", "create"]
    assert "--no-publish" in create["args"]  # CML posts the body as written
    assert create["do_not_track"] == "1"  # and sends no telemetry
    assert create["repo"] == "https://github.com/modelci/example-model"
    # By default nothing is uploaded (no `cml asset publish`), and no image is left pointing at
    # a plot that was not: the images are dropped, with a one-line note.
    assert all(call["args"][:2] == ["comment", "create"] for call in pr7.cml_calls())
    assert all(call["published"] == [] for call in pr7.cml_calls())
    assert "](plots/" not in comment["body"]
    # The plots travel as Mermaid charts the validator kept, and the confusion matrix as a table.
    assert comment["body"].count("```mermaid\nxychart-beta") >= 2, comment["body"][-3000:]
    assert "PNG upload is off" not in comment["body"]
    (setup,) = harness.read_calls(pr7.stub_root, "setup-cml")[:1]
    assert setup["vega"] == "false"


def test_comment_job_fetched_the_artifact_of_the_triggering_run(pr7: PullRequest7) -> None:
    requests = harness.requests(pr7.stub_root)
    listed = [r for r in requests if r["path"].endswith("/artifacts")]
    assert [(r["path"], r["query"], r["user"]) for r in listed] == [
        (
            f"/repos/{REPO_SLUG}/actions/runs/{run}/artifacts",
            "name=modelci-report&per_page=100",
            BOT,
        )
        for run in (1001, 1002)
    ]
    storage = [r for r in requests if r["path"].startswith("/storage/")]
    assert [r["path"] for r in storage] == [
        "/storage/1001/modelci-report",
        "/storage/1002/modelci-report",
    ]
    # The token was not sent on to the storage host the download redirected to.
    assert not any(r["storage_saw_token"] for r in storage)
    # The comment side never checks out the repository (and so never runs the PR's code).
    assert "actions/checkout" not in pr7.first_comment.log


def test_regressing_push_fails_the_model_job_at_the_gate(pr7: PullRequest7) -> None:
    run = pr7.second
    assert run.results() | {"ci": None} == {
        "ci": None,
        "lint": "success",
        "test": "success",
        "plan": "success",
        "model": "failure",
        "report": "failure",
        "all-green": "failure",
    }, run.explain()
    assert run.returncode != 0
    assert run.step_result("model", "Check that the committed dvc.lock") == "success"
    assert run.step_result("model", "Quality gate") == "failure"
    assert run.step_result("model", "Upload the report") == "success"
    output = run.output("model")
    assert re.search(r"accuracy.*FAIL|FAIL.*accuracy", output, re.IGNORECASE), output[-3000:]
    # the report job still merges the failing model's report, and its combined gate fails
    assert run.step_result("report", "Upload the merged report") == "success"
    assert run.step_result("report", "Every model's gate") == "failure"
    assert "0 of 1 affected models passed the gate: 1 FAILED" in run.output("report")


def test_second_push_leaves_one_comment_which_names_the_metric(pr7: PullRequest7) -> None:
    run = pr7.second_comment
    assert run.result("comment") == "success", run.explain()
    comments = harness.comments(pr7.stub_root)
    assert len(comments) == 1
    (comment,) = comments
    first_id = pr7.comments_after_first[0]["id"]
    assert comment["id"] != first_id
    assert comment["user"] == BOT
    assert [c["done"] for c in pr7.comment_calls()] == ["created", "created"]
    deletes = [r for r in harness.requests(pr7.stub_root) if r["method"] == "DELETE"]
    assert [(r["path"], r["user"]) for r in deletes] == [
        (f"/repos/{REPO_SLUG}/issues/comments/{first_id}", BOT)
    ]
    body = plain(comment["body"])
    headline = body.split("### Metrics")[0]
    assert "gate FAILED: accuracy: 0.6775 is below the minimum 0.7500 by 0.0725" in headline
    # a drop of 0.12 on 552 rows is far outside the noise: the interval excludes 0
    assert re.search(
        r"\| \*\*accuracy\*\* \| 0\.7989 \| 0\.6775 \| -0\.1214 \| "
        r"-0\.\d{4} to -0\.\d{4} \(95%\) \| \*\*yes\*\*, p=[0-9.e-]+ \| ▼ regressed \|",
        body,
    ), body[:3000]
    assert "conclusion: failure" in body

"""End to end under act: a stale dvc.lock, and hostile pull-request text.

Pull request #9 changes a parameter without re-running the pipeline: the model job fails with the
reproducibility message. Pull request #8 tunes a parameter (so its model job runs and its report
carries the title), but its title and branch name are built to run commands if any step pasted
them into a script (command substitution, backticks, ``;``, ``${{ }}``): nothing runs, and the
report and the comment show the text as written.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.workflows import harness
from tests.workflows.conftest import (
    REPO_SLUG,
    ModelRepo,
    keep_artifact,
    pull_request_event,
    workflow_run_event,
)
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN

pytestmark = [pytest.mark.workflows, pytest.mark.slow]

STALE_MESSAGE = "stale dvc.lock: run dvc repro and commit"


def hostile_title(canary: Path) -> str:
    return (
        f'Docs"; touch {canary}/a; echo " $(touch {canary}/b) '
        f"`touch {canary}/c` ${{{{ github.token }}}} && echo '|' & <b>x</b>"
    )


def hostile_branch(canary: Path) -> str:
    return f"docs/$(touch${{IFS}}{canary}/d)-${{{{github.token}}}}-`id`"


def plain(markdown: str) -> str:
    """The text a reader sees: no zero-width spaces, backslash escapes or HTML entities."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown.replace("\u200b", "")))


@dataclass
class Untrusted:
    canary: Path
    stub_root: Path
    env: harness.ActEnv
    title: str
    branch: str
    hostile: harness.ActRun
    hostile_comment: harness.ActRun
    stale: harness.ActRun


@pytest.fixture(scope="module")
def untrusted(
    model_repo: ModelRepo, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Untrusted]:
    work = tmp_path_factory.mktemp("untrusted")
    # A short path, so title and branch fit the report's 256-character title line together.
    canary = Path(tempfile.mkdtemp(prefix="mc-", dir="/tmp"))
    stub_root = model_repo.stub_root(work / "stubs")
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, github_api=github.url)
        title, branch = hostile_title(canary), hostile_branch(canary)
        secrets = {"GITHUB_TOKEN": TOKEN}

        repo = model_repo.clone("improve", work / "improve")
        event = pull_request_event(model_repo, 8, "improve", title=title, head_ref=branch)
        workflow = repo / ".github" / "workflows" / "pr.yml"
        hostile = harness.run_act(
            repo, "pull_request", event, workflow, env, work=work / "act-8", secrets=secrets
        )
        keep_artifact(stub_root, 2001)
        default_branch = model_repo.clone("main", work / "main")
        run_event = workflow_run_event(model_repo, 2001, "improve", 8, "success")
        run_event["workflow_run"]["head_branch"] = branch  # type: ignore[index]
        hostile_comment = harness.run_act(
            default_branch,
            "workflow_run",
            run_event,
            modelci_src / ".github" / "workflows" / "pr-comment.yml",
            env,
            work=work / "act-8-comment",
            secrets=secrets,
        )

        repo = model_repo.clone("stale", work / "stale")
        event = pull_request_event(model_repo, 9, "stale", title="Less regularisation")
        workflow = repo / ".github" / "workflows" / "pr.yml"
        stale = harness.run_act(repo, "pull_request", event, workflow, env, work=work / "act-9")
        yield Untrusted(canary, stub_root, env, title, branch, hostile, hostile_comment, stale)
    shutil.rmtree(canary)


def test_stale_lock_fails_the_model_job_with_the_message(untrusted: Untrusted) -> None:
    run = untrusted.stale
    assert run.result("model") == "failure", run.explain()
    assert run.result("all-green") == "failure"
    assert (run.result("lint"), run.result("test"), run.result("plan")) == ("success",) * 3
    assert run.step_result("model", "Reproduce the pipeline") == "success"
    assert run.step_result("model", "Check that the committed dvc.lock is up to date") == "failure"
    output = run.output("model")
    assert STALE_MESSAGE in output, output[-3000:]
    assert "dvc.lock" in output.split(STALE_MESSAGE, 1)[1]  # the changed files are named
    # The report is still built and uploaded, so the comment can show what changed.
    assert run.step_result("model", "Build the report against the base") == "success"
    assert run.step_result("model", "Upload the report") == "success"


def test_hostile_title_and_branch_execute_nothing(untrusted: Untrusted) -> None:
    assert sorted(p.name for p in untrusted.canary.iterdir()) == []
    run = untrusted.hostile
    jobs = ("lint", "test", "plan", "model", "report", "all-green")
    assert {job: run.result(job) for job in jobs} == dict.fromkeys(jobs, "success"), run.explain()
    assert untrusted.hostile_comment.result("comment") == "success"


def test_hostile_text_shows_literally_in_the_report_and_the_comment(untrusted: Untrusted) -> None:
    report = (
        untrusted.stub_root / "artifacts" / "runs" / "2001" / "modelci-report" / "report.md"
    ).read_text(encoding="utf-8")
    (comment,) = harness.comments(untrusted.stub_root)
    for text in (report, comment["body"]):
        shown = plain(text)
        assert untrusted.title in shown
        assert untrusted.branch in shown
        assert "${{ github.token }}" in shown
        assert TOKEN not in text
    # No raw HTML from the title reaches the comment.
    assert "<b>x</b>" not in comment["body"]
    assert comment["target"] == "pr/8"


def test_tampered_artifact_is_refused_and_nothing_is_posted(
    untrusted: Untrusted, model_repo: ModelRepo, modelci_src: Path, tmp_path: Path
) -> None:
    """An artifact naming another pull request (as a hostile PR could upload) posts nothing."""
    runs = untrusted.stub_root / "artifacts" / "runs"
    tampered = runs / "2002" / "modelci-report"
    shutil.copytree(runs / "2001" / "modelci-report", tampered)
    metadata = json.loads((tampered / "metadata.json").read_text(encoding="utf-8"))
    (tampered / "metadata.json").write_text(json.dumps({**metadata, "pr_number": 1}), "utf-8")
    before = harness.comments(untrusted.stub_root)
    calls = len(harness.read_calls(untrusted.stub_root, "cml"))
    run = harness.run_act(
        model_repo.clone("main", tmp_path / "main"),
        "workflow_run",
        workflow_run_event(model_repo, 2002, "improve", 8, "success"),
        modelci_src / ".github" / "workflows" / "pr-comment.yml",
        untrusted.env,
        work=tmp_path / "act",
        secrets={"GITHUB_TOKEN": TOKEN},
    )
    assert run.result("comment") == "failure", run.explain()
    assert (
        "artifact refused: metadata.json names pull request #1, but the triggering run belongs"
        " to #8" in run.output("comment")
    )
    assert harness.comments(untrusted.stub_root) == before
    assert len(harness.read_calls(untrusted.stub_root, "cml")) == calls

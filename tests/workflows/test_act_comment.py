"""The comment workflow under act against histories and artifacts that broke the CML-only design.

Each run is ``pr-comment.yml`` on a ``workflow_run`` event, with the report artifact filed by the
test (no pull-request run needed) and the GitHub API served by ``fake_github`` on 127.0.0.1:

- pull request #5 has 35 earlier comments by another user and gets two runs: CML's ``update``
  reads only the first 30 comments, so it would add a second modelci comment; one remains, and
  its metrics table renders intact through a CommonMark + GFM renderer;
- pull request #6 has another user's comment holding a copied watermark: CML's ``update`` would
  PATCH it (403, no report); it is never touched and the job is green;
- pull request #4's artifact is a zip whose entry climbs out with ``x/../../``: refused in one
  line before anything is written, and CML is never installed.

As on GitHub, the comment job checks nothing out and its post step runs in a folder that is not a
git checkout, where CML without ``--repo`` fails (the stand-in reads the git remote as CML does):
every ``cml`` call names the repository, and by default nothing is uploaded.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from modelci.judge.markdown import escape
from tests.workflows import harness
from tests.workflows.conftest import REPO_SLUG, ModelRepo, workflow_run_event
from tests.workflows.fake_github import BOT, FakeGitHub
from tests.workflows.gfm import struck, table_rows
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN

pytestmark = [pytest.mark.workflows, pytest.mark.slow]

BRANCH = "improve"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x02" * 64
NAME = "titanic|v2 ~x~ [a](b)"  # a model name from the pull request
COPIED = '![](https://cml.dev/watermark.png#0123abcd "CML watermark modelci report")'


def report() -> str:
    return (
        "## modelci report\n\n| model | accuracy |\n|---|---|\n"
        f"| {escape(NAME)} | 0.8062 |\n\n![ROC](plots/roc.png)\n"
    )


@dataclass
class Runs:
    stub_root: Path
    canary: Path
    history: list[harness.ActRun]
    copied: harness.ActRun
    hostile: harness.ActRun
    mallory_comment: dict[str, object]


def _file_artifact(stub_root: Path, run_id: int, number: int, head_sha: str) -> None:
    folder = stub_root / "artifacts" / "runs" / str(run_id) / "modelci-report"
    (folder / "plots").mkdir(parents=True)
    (folder / "metadata.json").write_text(
        f'{{"pr_number": {number}, "head_sha": "{head_sha}", "run_id": {run_id}}}', "utf-8"
    )
    (folder / "report.md").write_text(report(), encoding="utf-8")
    (folder / "plots" / "roc.png").write_bytes(PNG)


def _hostile_zip(stub_root: Path, run_id: int, canary: Path) -> None:
    climb = "x/" + "../" * 40 + str(canary).lstrip("/") + "/pwned.py"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", '{"pr_number": 4}')
        archive.writestr(climb, "print('ran')\n")
    folder = stub_root / "artifacts" / "runs" / str(run_id)
    folder.mkdir(parents=True)
    (folder / "modelci-report.zip").write_bytes(buffer.getvalue())


@pytest.fixture(scope="module")
def runs(
    model_repo: ModelRepo, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    work = tmp_path_factory.mktemp("comment")
    canary = Path(tempfile.mkdtemp(prefix="mc-canary-"))
    stub_root = model_repo.stub_root(work / "stubs", warm=False)
    default_branch = model_repo.clone("main", work / "main")
    head = model_repo.shas[BRANCH]
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src, github_api=github.url)

        def comment(run_id: int, number: int) -> harness.ActRun:
            return harness.run_act(
                default_branch,
                "workflow_run",
                workflow_run_event(model_repo, run_id, BRANCH, number, "success"),
                modelci_src / ".github" / "workflows" / "pr-comment.yml",
                env,
                work=work / f"act-{run_id}",
                secrets={"GITHUB_TOKEN": TOKEN},
            )

        for i in range(35):
            github.add_comment(5, "alice", f"review comment {i}")
        history = []
        for run_id in (4001, 4002):
            _file_artifact(stub_root, run_id, 5, head)
            history.append(comment(run_id, 5))
        mallory = github.add_comment(6, "mallory", f"I copied it: {COPIED}")
        _file_artifact(stub_root, 4003, 6, head)
        copied = comment(4003, 6)
        _hostile_zip(stub_root, 4004, canary)
        hostile = comment(4004, 4)
        yield Runs(stub_root, canary, history, copied, hostile, dict(mallory))
    shutil.rmtree(canary)


def _on(runs: Runs, number: int) -> list[dict[str, object]]:
    return [c for c in harness.comments(runs.stub_root) if c["pr"] == number]


def test_a_pr_with_35_comments_pushed_twice_has_one_modelci_comment(runs: Runs) -> None:
    for run in runs.history:
        assert run.result("comment") == "success", run.explain()
    comments = _on(runs, 5)
    ours = [c for c in comments if c["user"] == BOT]
    assert len(ours) == 1
    assert len([c for c in comments if c["user"] == "alice"]) == 35
    assert "CML watermark modelci report" in str(ours[0]["body"])


def test_the_metrics_table_renders_intact(runs: Runs) -> None:
    (ours,) = [c for c in _on(runs, 5) if c["user"] == BOT]
    body = str(ours["body"])
    # As a reader sees it (the validator's zero-width spaces are invisible).
    rows = [[cell.replace("\u200b", "") for cell in row] for row in table_rows(body)]
    assert rows == [["model", "accuracy"], [NAME, "0.8062"]]
    assert struck(body) == []


def test_a_copied_watermark_is_never_edited_and_the_job_is_green(runs: Runs) -> None:
    assert runs.copied.result("comment") == "success", runs.copied.explain()
    comments = _on(runs, 6)
    assert runs.mallory_comment in comments  # unchanged, not deleted
    assert len([c for c in comments if c["user"] == BOT]) == 1
    mallory = f"/repos/{REPO_SLUG}/issues/comments/{runs.mallory_comment['id']}"
    touched = [r for r in harness.requests(runs.stub_root) if r["method"] in ("PATCH", "DELETE")]
    assert all(r["path"] != mallory for r in touched)


def test_a_climbing_zip_entry_is_refused_before_anything_is_written(runs: Runs) -> None:
    run = runs.hostile
    assert run.result("comment") == "failure", run.explain()
    output = run.output("comment")
    refusals = [line for line in output.splitlines() if line.startswith("error: artifact refused")]
    assert len(refusals) == 1, output[-3000:]
    assert "'..' in its name" in refusals[0]
    assert list(runs.canary.iterdir()) == []
    assert "Traceback" not in output
    # CML was never installed, let alone called, for that run.
    assert run.step_result("comment", "setup-cml") in (None, "skipped")
    assert not [c for c in harness.read_calls(runs.stub_root, "cml") if "4004" in c["cwd"]]


def test_the_comment_job_checks_nothing_out() -> None:
    workflow = yaml.safe_load((harness.GITHUB_DIR / "workflows" / "comment.yml").read_text("utf-8"))
    action = yaml.safe_load(
        (harness.GITHUB_DIR / "actions" / "comment" / "action.yml").read_text("utf-8")
    )
    steps = [*workflow["jobs"]["comment"]["steps"], *action["runs"]["steps"]]
    assert [s["uses"] for s in steps if "checkout" in str(s.get("uses", ""))] == []


def test_the_post_step_runs_outside_a_git_checkout_and_names_the_repository(runs: Runs) -> None:
    calls = harness.read_calls(runs.stub_root, "cml")
    assert len(calls) == 3  # one comment create per run of PRs #5 (twice) and #6
    for call in calls:
        assert call["args"][:2] == ["comment", "create"]
        assert call["args"][-2:] == ["--repo", f"https://github.com/{REPO_SLUG}"]
        # recorded by the stand-in when it ran: `git rev-parse --is-inside-work-tree` failed
        assert call["in_checkout"] is False, call["cwd"]


def test_by_default_nothing_is_uploaded_and_no_image_points_at_a_missing_file(
    runs: Runs,
) -> None:
    assert [r for r in harness.requests(runs.stub_root) if r["path"] == "/assets"] == []
    assert all(call["published"] == [] for call in harness.read_calls(runs.stub_root, "cml"))
    (ours,) = [c for c in _on(runs, 5) if c["user"] == BOT]
    assert "plots/roc.png" not in str(ours["body"])
    assert "PNG upload is off" in str(ours["body"])

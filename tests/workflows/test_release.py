"""The release workflow end to end under act, against a real ``mlflow server`` on 127.0.0.1.

The model repository (the CI tests' ``model_repo``) runs its ``main.yml`` caller on push, which
calls this checkout's ``release.yml``. What needs Docker, a cluster or GitHub is a recording stub
on PATH (``tests/workflows/stubs/release-bin``): ``docker`` (login, buildx build --push with a
digest), ``kubectl`` (apply, set image, rollout status/undo) and ``gh`` (release create). The
GitHub REST API that finds the merged PR's report and the deployed endpoint are one small HTTP
server on 127.0.0.1 started by the test.

Pushes: (1) kubernetes target, the endpoint healthy: registered, promoted, image pushed,
applied, smoke-tested, released as model-v1; (2) a new commit, the endpoint failing: promoted,
then rolled back automatically (kubectl rollout undo, @champion back on version 1) and the run
fails; (3) a PR report whose sha256 differs from the model: refused before registering; (4) a
docs-only commit with no reviewed report: the plan releases nothing and the run succeeds, with the
notice "unchanged: nothing to release". Pushes 2 and 3 touch only a comment in dvc.yaml (the
project's pipeline file), so the release's plan (modelci release plan) counts the project changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.projects import Project
from tests.conftest import run
from tests.integration.registry_support import MlflowServer
from tests.workflows import harness
from tests.workflows.conftest import ModelRepo, project_name, warm_dvc_cache
from tests.workflows.release_support import RELEASE_BIN, Fake, push_event

pytestmark = [pytest.mark.workflows, pytest.mark.slow]


@dataclass
class Release:
    repo: Path
    stub_root: Path
    runs: list[harness.ActRun]
    commits: list[str]
    server: MlflowServer
    added: Project  # the second project, models/wine

    def calls(self, stub: str) -> list[dict[str, Any]]:
        return harness.read_calls(self.stub_root, stub)


def _commit(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def release(
    pipeline_repo: Path,
    model_repo: ModelRepo,
    modelci_src: Path,
    server: MlflowServer,
    fake: tuple[Fake, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Release:
    state, url = fake
    work = tmp_path_factory.mktemp("release")
    stub_root = model_repo.stub_root(work / "stubs")
    env = harness.ActEnv(stub_root=stub_root, modelci_src=modelci_src)
    repo = model_repo.clone("main", work / "repo")
    # a kubernetes deploy: manifests, a Dockerfile and the target in params.yaml
    (repo / "deploy" / "k8s").mkdir(parents=True, exist_ok=True)
    (repo / "deploy" / "k8s" / "kustomization.yaml").write_text("resources: []\n")
    if not (repo / "Dockerfile").exists():
        (repo / "Dockerfile").write_text("FROM scratch\n")
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(
        params.replace("deploy_target: registry", "deploy_target: kubernetes")
    )
    # What `dvc repro` records for the change (prepare and evaluate track the whole params.yaml):
    # the new value in dvc.lock, the outputs unchanged, so the release's check-lock passes.
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        tracked = stage.get("params", {}).get("params.yaml", {})
        if "registry" in tracked:
            tracked["registry"]["deploy_target"] = "kubernetes"
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    secrets = {
        "MLFLOW_TRACKING_URI": server.uri,
        "SMOKE_URL": url,
        "KUBE_CONFIG": "apiVersion: v1\nkind: Config\n# test kubeconfig\n",
        "GITHUB_TOKEN": "ghs_test_token_not_real",
    }
    workflow = repo / ".github" / "workflows" / "main.yml"
    model_sha = _sha(pipeline_repo / "models" / "model.skops")  # main's model (dvc.lock)
    runs, commits = [], []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{RELEASE_BIN}{os.pathsep}{os.environ['PATH']}")
        mp.setenv("MODELCI_GITHUB_API_URL", url)

        def push(
            message: str, reviewed: str, healthy: bool, touch: str = "dvc.yaml", deployed: str = ""
        ) -> None:
            with (repo / touch).open("a", encoding="utf-8") as handle:
                handle.write(f"# {message}\n")
            sha = _commit(repo, message)
            commits.append(sha)
            state.reports = {sha: reviewed} if reviewed else {}
            state.healthy = healthy
            state.sha256 = deployed or model_sha
            mp.setenv("MODELCI_TEST_COMMIT", sha)
            runs.append(
                harness.run_act(
                    repo,
                    "push",
                    push_event(sha),
                    workflow,
                    env,
                    work=work / f"act-{len(runs)}",
                    secrets=secrets,
                )
            )

        push("release 1: kubernetes target", model_sha, healthy=True)
        push("release 2: the endpoint fails its smoke test", model_sha, healthy=False)
        push("release 3: the PR reviewed other bytes", "0" * 64, healthy=True)
        push("release 4: docs only, no PR report", "", healthy=True, touch="NOTES.md")
        # A second project, added by `modelci init --add` and reproduced (commit not pushed: the
        # branch before the merge), then a merge touching only its params.yaml.
        mp.setenv("GIT_AUTHOR_NAME", "modelci tests")
        mp.setenv("GIT_COMMITTER_NAME", "modelci tests")
        mp.setenv("GIT_AUTHOR_EMAIL", "tests@modelci.invalid")
        mp.setenv("GIT_COMMITTER_EMAIL", "tests@modelci.invalid")
        wine = _add_project(repo, work)
        warm_dvc_cache(repo / ".dvc" / "cache", stub_root, wine.name)
        state.projects = [wine.name]
        wine_sha = _sha(repo / WINE / "models" / "model.skops")
        push(
            "release 5: wine's params only",
            wine_sha,
            healthy=True,
            touch=f"{WINE}/params.yaml",
            deployed=wine_sha,
        )
    return Release(repo, stub_root, runs, commits, server, wine)


WINE = "models/wine"


def _add_project(repo: Path, work: Path) -> Project:
    """``modelci init --add models/wine`` from scikit-learn's wine data, reproduced, committed."""
    from modelci.cli import main
    from modelci.projects import load_project
    from tests.projects_support import dataset_csv

    data = dataset_csv("load_wine", "cultivar", work / "wine.csv")
    argv = ["init", str(repo), "--add", WINE, "--data", str(data), "--target", "cultivar"]
    assert main(argv) == 0
    run(["dvc", "repro", "--quiet"], repo / WINE)
    _commit(repo, "wine reproduced")
    project = load_project(repo, WINE)
    assert project is not None
    return project


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _registry(release: Release, model: str = "titanic-survival") -> Any:
    from modelci.registry.core import Registry

    os.environ["MLFLOW_TRACKING_URI"] = release.server.uri
    try:
        return Registry(model, "champion", "previous")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]


def test_first_release_registers_promotes_deploys_and_tags(release: Release) -> None:
    first = release.runs[0]
    jobs = ("plan", "register", "promote", "deploy", "release")
    assert {job: first.result(job) for job in jobs} == dict.fromkeys(
        jobs, "success"
    ), first.explain()
    assert first.returncode == 0, first.explain()
    reg = _registry(release)
    version = reg.versions(**{"modelci.git_commit": release.commits[0]})
    assert [v.version for v in version] == [1]
    assert version[0].tags["modelci.pr_report"] == "PR #7"
    # lineage of the merge commit as the release job found it, not of the run logged before it
    assert version[0].tags["modelci.git_dirty"] == "false"
    assert version[0].tags["modelci.model_matches_dvc_lock"] == "true"
    # image built and pushed with the token on stdin, digest recorded
    docker = release.calls("docker")
    login = [c for c in docker if c["args"][0] == "login"]
    assert login
    assert all(c["password_given"] and "--password-stdin" in c["args"] for c in login)
    assert not any("ghs_test_token_not_real" in " ".join(c["args"]) for c in docker)
    build = next(c for c in docker if c["args"][:2] == ["buildx", "build"])
    assert "--push" in build["args"]
    assert "ghcr.io/modelci/example-model:model-v1" in build["args"]
    # kubernetes: applied with a private kubeconfig, image set to the pushed digest
    kubectl = [c for c in release.calls("kubectl") if c["job"] == "deploy"]
    first_calls = kubectl[:3]
    assert first_calls[0]["args"] == ["apply", "-k", "deploy/k8s"]
    assert first_calls[1]["args"][:2] == ["set", "image"]
    assert first_calls[1]["args"][3] == f"serve=ghcr.io/modelci/example-model@{build['digest']}"
    assert all(c["kubeconfig"] and c["kubeconfig_mode"] == "0o600" for c in kubectl)
    # release model-v1 with card, metrics and lineage (which records the image digest)
    tagged = release.stub_root / "releases" / "model-v1"
    assert sorted(p.name for p in tagged.iterdir()) == [
        "lineage.json",
        "metrics.json",
        "model_card.md",
        "notes.md",
    ]
    lineage = json.loads((tagged / "lineage.json").read_text())
    assert lineage["image"].endswith(build["digest"])
    assert lineage["lineage"]["modelci.git_commit"] == release.commits[0]
    assert "accuracy" in json.loads((tagged / "metrics.json").read_text())
    summaries = "\n".join(first.summaries())
    assert "Deployed and smoke-tested" in summaries
    assert "Promoted" in summaries
    # no secret value in the log
    assert "test kubeconfig" not in first.log
    assert "ghs_test_token_not_real" not in first.log


def test_failed_smoke_test_rolls_back_automatically_and_fails(release: Release) -> None:
    second = release.runs[1]
    assert second.result("promote") == "success", second.explain()
    assert second.result("deploy") == "failure", second.explain()
    assert second.result("release") != "success"
    assert second.returncode != 0
    reg = _registry(release)
    v2 = reg.versions(**{"modelci.git_commit": release.commits[1]})[0]
    assert v2.gate == "rolled_back"
    assert "smoke test failed" in v2.tags["modelci.rollback.reason"]
    aliases = reg.aliases()
    assert aliases.champion is not None
    assert aliases.champion.version == 1
    undo = [c["args"] for c in release.calls("kubectl") if c["args"][:2] == ["rollout", "undo"]]
    assert undo == [["rollout", "undo", "deployment/modelci-serve"]]
    assert "failed its smoke test and was rolled back to version 1" in second.output("deploy")
    assert "Smoke test FAILED: rolled back" in "\n".join(second.summaries())
    assert not (release.stub_root / "releases" / "model-v2").exists()


def test_bytes_that_differ_from_the_review_are_refused(release: Release) -> None:
    third = release.runs[2]
    assert third.result("register") == "failure", third.explain()
    assert third.result("promote") != "success"
    assert "does not match the registered" in third.output("register")
    reg = _registry(release)
    assert reg.versions(**{"modelci.git_commit": release.commits[2]}) == []
    assert reg.aliases().champion is not None
    assert reg.aliases().champion.version == 1


def test_a_docs_only_push_releases_nothing_and_succeeds(release: Release) -> None:
    """No project changed and no PR report: the plan skips the project with a notice, the
    project's release (which would fail to find a reviewed report) does not run."""
    fourth = release.runs[3]
    assert fourth.returncode == 0, fourth.explain()
    assert fourth.result("plan") == "success", fourth.explain()
    assert fourth.result("register") is None, fourth.explain()
    # The notice is an annotation (act records the ::notice:: command, not a log line); the first
    # push, which changed the project, planned it and printed none.
    skipped = ": unchanged: nothing to release (no dependency changed)"
    assert any(n.endswith(skipped) for n in fourth.annotations("plan")), fourth.output("plan")
    assert not any(skipped in n for n in release.runs[0].annotations("plan"))
    assert "released as titanic-survival" in release.runs[0].output("plan")
    assert "| unchanged: nothing to release |" in "\n".join(fourth.summaries())
    assert _registry(release).versions(**{"modelci.git_commit": release.commits[3]}) == []


def test_a_merge_changing_one_of_two_projects_releases_only_that_one(release: Release) -> None:
    """The second project (added by ``modelci init --add``) is the only one the merge touches:
    it is registered under its own name, promoted and tagged ``<name>/v1``; the root project's
    model is untouched on the server (no new version, @champion still version 1, no tag)."""
    fifth, wine = release.runs[4], release.added
    jobs = ("plan", "register", "promote", "deploy", "release")
    assert {job: fifth.result(job) for job in jobs} == dict.fromkeys(
        jobs, "success"
    ), fifth.explain()
    assert f"{wine.name}: released as {wine.registered_model}" in fifth.output("plan")
    skipped = ": unchanged: nothing to release (no dependency changed)"
    assert [n for n in fifth.annotations("plan") if n.endswith(skipped)] == [
        f"{project_name(release.repo)}{skipped}"  # the root project, titanic-survival's
    ], fifth.annotations("plan")
    added = _registry(release, wine.registered_model)
    (version,) = added.versions(**{"modelci.git_commit": release.commits[4]})
    assert version.version == 1
    assert added.aliases().champion is not None
    assert added.aliases().champion.version == 1
    assert (release.stub_root / "releases" / wine.name / "v1" / "lineage.json").is_file()
    root = _registry(release)
    assert root.versions(**{"modelci.git_commit": release.commits[4]}) == []
    assert sorted(v.version for v in root.versions()) == [1, 2]  # pushes 1 and 2, nothing since
    assert root.aliases().champion is not None
    assert root.aliases().champion.version == 1
    assert sorted(p.name for p in (release.stub_root / "releases").iterdir()) == [
        "model-v1",
        wine.name,
    ]

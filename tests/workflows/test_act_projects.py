"""Several models in one repository, under act: the PR workflow on three projects.

The repository is ``tests/projects_support.py``'s clinic (breast cancer at the root, wine and
diabetes under ``models/`` sharing ``src/features``), made from the built wheel with a real
``uv.lock`` as ``tests/adoption_support.py`` makes an adopter's repository; its jobs install that
lock for real. Only wine is reproduced (on main and on the params branch): it is the one model job
that runs; the runner's DVC cache is warm under wine's cache key.

One act run per pull request, shared by the module's tests:

- wine's ``params.yaml`` changed: the full PR workflow, then the comment workflow posting the
  merged comment to ``fake_github``: one model job (wine), the other two listed unchanged;
- the README changed: the full PR workflow (cheap: no model job), still a green required check;
- the shared feature package changed, and ``uv.lock`` changed: the plan job alone (the reusable
  workflow reduced to it, ``harness.only_jobs``, act's ``-j`` for a called workflow), asserting its
  matrix: the params run already proves that the matrix drives the model jobs, and a model job
  costs minutes of CI.

Each run's wall time and the load average after it are written to ``timings.json`` in the
fixture's folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from modelci.ci.affected import NO_CHANGE
from tests.adoption_support import WORKFLOWS_REF, Adopter, init_repository
from tests.conftest import run
from tests.projects_support import ROOT_NAME, build_clinic, commit, git
from tests.workflows import harness
from tests.workflows.conftest import (
    REMOTE_URL,
    REPO_SLUG,
    ModelRepo,
    keep_artifact,
    pull_request_event,
    warm_dvc_cache,
    workflow_run_event,
)
from tests.workflows.fake_github import FakeGitHub
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN

pytestmark = [pytest.mark.workflows, pytest.mark.slow]

CI_JOBS = ("lint", "test", "plan", "model", "report", "all-green")
PR = 21
PARAMS_RUN = 2101
WINE_PARAMS = ("max_iter: 200", "max_iter: 300")
# A full run's jobs each install the real lock (about 4 min apiece at a load of 10 on 2 cores).
ACT_TIMEOUT = 2400


@dataclass
class ClinicRuns:
    repo: ModelRepo
    work: Path
    runs: dict[str, harness.ActRun] = field(default_factory=dict)
    stub_roots: dict[str, Path] = field(default_factory=dict)
    comment: harness.ActRun | None = None

    def plan(self, branch: str) -> dict[str, Any]:
        path = self.stub_roots[branch] / "artifacts" / "modelci-report.plan" / "plan.json"
        return json.loads(path.read_text(encoding="utf-8"))

    def model_uploads(self, branch: str) -> list[str]:
        """The model report artifacts the run uploaded (one per model job that ran)."""
        uploads = harness.read_calls(self.stub_roots[branch], "upload-artifact")
        return [c["name"] for c in uploads if c["name"].startswith("modelci-report-")]


def _repository(work: Path, wheel: Path) -> tuple[Adopter, ModelRepo]:
    """The clinic with a real lock, wine reproduced, and one branch per pull request."""
    adopters: list[Adopter] = []

    def init_root(data: Path, target: str) -> Path:
        adopters.append(init_repository(work, wheel, data, target))
        return adopters[0].repo

    def add(repo: Path, argv: list[str]) -> None:
        adopters[0].run("modelci", "init", str(repo), *argv)

    repo = build_clinic(work, init_root, add)
    adopter = adopters[0]
    run(["git", "remote", "add", "origin", REMOTE_URL], repo)
    adopter.run("dvc", "repro", "models/wine/dvc.yaml")
    shas = {"main": commit(repo, "the wine model reproduced", {})}
    git(repo, "checkout", "-q", "-b", "params")
    params = repo / "models" / "wine" / "params.yaml"
    assert params.read_text().count(WINE_PARAMS[0]) == 1, params.read_text()
    params.write_text(params.read_text().replace(*WINE_PARAMS))
    adopter.run("dvc", "repro", "models/wine/dvc.yaml")
    shas["params"] = commit(repo, "wine: more boosting rounds", {})
    readme = repo / "README.md"
    lock = (repo / "uv.lock").read_text()
    scale = (repo / "src" / "features" / "scale.py").read_text()
    for branch, files in (
        ("docs", {"README.md": (readme.read_text() if readme.exists() else "") + "\nDocs.\n"}),
        ("features", {"src/features/scale.py": scale + "\n\nSCALE = 2.0\n"}),
        ("lock", {"uv.lock": lock + "\n# relocked\n"}),
    ):
        git(repo, "checkout", "-q", "-b", branch, "main")
        shas[branch] = commit(repo, f"{branch} changed", files)
    git(repo, "checkout", "-q", "main")
    return adopter, ModelRepo(origin=repo, shas=shas, warm_cache=repo / ".dvc" / "cache")


@pytest.fixture(scope="module")
def clinic_runs(
    modelci_dists: dict[str, Path], modelci_src: Path, tmp_path_factory: pytest.TempPathFactory
) -> ClinicRuns:
    work = tmp_path_factory.mktemp("clinic-act")
    _, model = _repository(work, modelci_dists["wheel"])
    out = ClinicRuns(model, work)
    plan_only = harness.only_jobs(modelci_src, work / "plan-only-src", "ci.yml", ["plan"])
    timings: dict[str, dict[str, float]] = {}

    def env(stub_root: Path, source: Path, api: str | None = None) -> harness.ActEnv:
        maps = {f"{harness.OWNER_REPO}@{WORKFLOWS_REF}": source}
        return harness.ActEnv(stub_root, source, maps, real_uv=True, github_api=api)

    def measure(name: str, act: harness.ActRun) -> harness.ActRun:
        timings[name] = {"seconds": round(act.seconds, 1), "load1": os.getloadavg()[0]}
        (work / "timings.json").write_text(json.dumps(timings, indent=2), encoding="utf-8")
        return act

    def pull_request(branch: str, source: Path, warm: bool) -> None:
        stub_root = out.stub_roots[branch] = work / f"stubs-{branch}"
        stub_root.mkdir()
        if warm:
            warm_dvc_cache(model.warm_cache, stub_root, "wine")
        clone = model.clone(branch, work / branch)
        out.runs[branch] = measure(
            branch,
            harness.run_act(
                clone,
                "pull_request",
                pull_request_event(model, PR, branch, title=f"clinic: {branch}"),
                clone / ".github" / "workflows" / "pr.yml",
                env(stub_root, source),
                work=work / f"act-{branch}",
                secrets={"GITHUB_TOKEN": TOKEN},
                timeout=ACT_TIMEOUT,
            ),
        )

    pull_request("params", modelci_src, warm=True)

    stub_root = out.stub_roots["params"]
    keep_artifact(stub_root, PARAMS_RUN)
    default_branch = model.clone("main", work / "main")
    comment_workflow = work / "pr-comment.act.yml"
    comment_workflow.write_text(
        harness.act_compatible(
            (default_branch / ".github" / "workflows" / "pr-comment.yml").read_text("utf-8")
        ),
        "utf-8",
    )
    params = out.runs["params"]
    conclusion = "success" if params.result("all-green") == "success" else "failure"
    with FakeGitHub(stub_root, REPO_SLUG) as github:
        out.comment = measure(
            "comment",
            harness.run_act(
                default_branch,
                "workflow_run",
                workflow_run_event(model, PARAMS_RUN, "params", PR, conclusion),
                comment_workflow,
                env(stub_root, modelci_src, github.url),
                work=work / "act-comment",
                secrets={"GITHUB_TOKEN": TOKEN},
            ),
        )
    pull_request("features", plan_only, warm=False)
    pull_request("lock", plan_only, warm=False)
    pull_request("docs", modelci_src, warm=False)
    return out


def _affected(plan: dict[str, Any]) -> dict[str, str]:
    return {p["path"]: p["reason"] for p in plan["projects"] if p["affected"]}


def test_a_params_change_runs_only_that_model_and_passes(clinic_runs: ClinicRuns) -> None:
    act = clinic_runs.runs["params"]
    assert {job: act.result(job) for job in CI_JOBS} == dict.fromkeys(
        CI_JOBS, "success"
    ), act.explain()
    plan = clinic_runs.plan("params")
    assert plan["matrix"] == {"include": [{"path": "models/wine", "name": "wine"}]}
    unchanged = {p["path"]: p["reason"] for p in plan["projects"] if not p["affected"]}
    assert unchanged == dict.fromkeys([".", "models/diabetes"], NO_CHANGE)
    # one model job: wine's report artifact alone, wine's DVC cache key alone
    assert clinic_runs.model_uploads("params") == ["modelci-report-wine"]
    caches = harness.read_calls(clinic_runs.stub_roots["params"], "cache")
    assert {c["restore_keys"][0] for c in caches if c.get("restore_keys")} == {"dvc-Linux-wine-"}
    assert "\n1 of 1 affected models passed the gate\n" in act.output("report")


def test_the_merged_comment_has_every_model_and_one_section(clinic_runs: ClinicRuns) -> None:
    assert clinic_runs.comment is not None
    assert clinic_runs.comment.result("comment") == "success", clinic_runs.comment.explain()
    (comment,) = harness.comments(clinic_runs.stub_roots["params"])
    assert comment["target"] == f"pr/{PR}"
    body = comment["body"]
    summary = body.split("<details>", 1)[0]  # the table of every model, before the sections
    rows = {
        line.split("|")[1].strip(): line for line in summary.splitlines() if line.startswith("| **")
    }
    assert set(rows) == {f"**{ROOT_NAME}**", "**diabetes**", "**wine**"}, body[:3000]
    for name in (ROOT_NAME, "diabetes"):
        assert f"| unchanged | {NO_CHANGE} | not run |" in rows[f"**{name}**"]
    assert "| 🟢 pass |" in rows["**wine**"], rows
    # one section, for the model that ran (its report may hold collapsed parts of its own)
    assert [n for n in ("wine", "diabetes", ROOT_NAME) if f"<summary>{n}: " in body] == ["wine"]
    assert "<summary>wine: 🟢 pass, " in body, body


def test_a_docs_change_runs_no_model_and_the_check_is_green(clinic_runs: ClinicRuns) -> None:
    act = clinic_runs.runs["docs"]
    assert act.result("all-green") == "success", act.explain()
    assert act.result("report") == "success", act.explain()
    assert act.result("model") not in ("success", "failure")
    plan = clinic_runs.plan("docs")
    assert (plan["count"], plan["matrix"]) == (0, {"include": []})
    assert clinic_runs.model_uploads("docs") == []


def test_the_shared_package_plans_its_two_projects(clinic_runs: ClinicRuns) -> None:
    act = clinic_runs.runs["features"]
    assert act.results() | {"ci": None} == {"ci": None, "plan": "success"}, act.explain()
    plan = clinic_runs.plan("features")
    assert plan["matrix"] == {
        "include": [
            {"path": "models/diabetes", "name": "diabetes"},
            {"path": "models/wine", "name": "wine"},
        ]
    }
    assert set(_affected(plan)) == {"models/diabetes", "models/wine"}


def test_the_lock_plans_every_project(clinic_runs: ClinicRuns) -> None:
    act = clinic_runs.runs["lock"]
    assert act.results() | {"ci": None} == {"ci": None, "plan": "success"}, act.explain()
    plan = clinic_runs.plan("lock")
    assert plan["count"] == 3
    assert _affected(plan) == dict.fromkeys(
        [".", "models/diabetes", "models/wine"],
        "uv.lock changed: the environment of every project",
    )
    assert [entry["name"] for entry in plan["matrix"]["include"]] == [ROOT_NAME, "diabetes", "wine"]

"""Where the reusable workflows' jobs run: a ``*-runs-on`` input per heavy job, a label or a JSON
list (or runner-group object), so the model job can move to a larger, self-hosted or
``cml runner launch`` runner while lint stays on the small default (issue 14)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, tool_env
from tests.workflows import harness
from tests.workflows.conftest import ModelRepo, pull_request_event
from tests.workflows.harness import FAKE_GITHUB_TOKEN as TOKEN

pytestmark = pytest.mark.workflows

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
# workflow -> the jobs whose runner a caller chooses; every other job stays on ubuntu-latest
CHOSEN = {
    "ci.yml": ("lint", "test", "model"),
    "release.yml": (),  # its plan job; each project's release is release-project.yml's
    "release-project.yml": ("register", "deploy"),
}
DEFAULT = "ubuntu-latest"


def expected_runs_on(job: str) -> str:
    value = f"inputs.{job}-runs-on"
    return (
        f"${{{{ (startsWith({value}, '[') || startsWith({value}, '{{')) && fromJSON({value})"
        f" || {value} }}}}"
    )


def load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", sorted(CHOSEN))
def test_each_heavy_job_runs_where_its_input_says(name: str) -> None:
    workflow = load(name)
    inputs = workflow[True]["workflow_call"]["inputs"]  # PyYAML reads `on` as True
    for job_id, job in workflow["jobs"].items():
        if "uses" in job:  # a reusable workflow's jobs choose their own runners
            continue
        if job_id in CHOSEN[name]:
            declared = inputs[f"{job_id}-runs-on"]
            assert (declared["type"], declared["default"]) == ("string", DEFAULT), job_id
            assert job["runs-on"] == expected_runs_on(job_id), job_id
        else:
            assert job["runs-on"] == DEFAULT, job_id


CALLER = """\
on: pull_request
permissions: {}
jobs:
  ci:
    permissions:
      contents: read
    uses: ./.github/workflows/ci.yml
    with:
      lint-runs-on: ubuntu-24.04
      model-runs-on: '["self-hosted", "linux", "x64"]'
      test-runs-on: '{"group": "larger-runners", "labels": ["ubuntu-latest-8-cores"]}'
  release:
    permissions:
      contents: write
      actions: read
      pull-requests: read
      packages: write
      id-token: write
    uses: ./.github/workflows/release.yml
    with:
      register-runs-on: cml-runner-large
      %(typo)s: ubuntu-latest
"""


def check_caller(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """actionlint (which checks a local reusable workflow's inputs) and the workflow schema."""
    shutil.copytree(REPO_ROOT / ".github", tmp_path / ".github")
    caller = tmp_path / ".github" / "workflows" / "caller.yml"
    caller.write_text(text, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    bin_dir = Path(sys.executable).parent

    def tool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=tmp_path, env=tool_env(), capture_output=True, text=True, timeout=300
        )

    return (
        tool(str(bin_dir / "actionlint"), str(caller)),
        tool(
            str(bin_dir / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(caller),
        ),
    )


def test_callers_choosing_runners_pass_actionlint_and_the_schema(tmp_path: Path) -> None:
    lint, schema = check_caller(tmp_path, CALLER % {"typo": "deploy-runs-on"})
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_actionlint_rejects_a_runner_input_that_does_not_exist(tmp_path: Path) -> None:
    lint, _ = check_caller(tmp_path, CALLER % {"typo": "deploy-runs-onn"})
    assert lint.returncode == 1
    assert 'input "deploy-runs-onn" is not defined' in lint.stdout


EXAMPLE = re.compile(r"<!-- example:(?P<name>[\w-]+) -->\n```yaml\n(?P<body>.*?)```", re.DOTALL)
# A pinned remote call of modelci's workflows -> the local file, so actionlint checks the inputs.
REMOTE_CALL = re.compile(r"uses: modelci/modelci/(\.github/workflows/[\w.-]+)@[0-9a-f]{40}.*")


def docs_examples() -> dict[str, str]:
    text = (REPO_ROOT / "docs" / "scale.md").read_text(encoding="utf-8")
    return {match["name"]: match["body"] for match in EXAMPLE.finditer(text)}


@pytest.mark.parametrize("name", ["caller-runners", "caller-cml-runner", "caller-dask"])
def test_the_documented_callers_pass_actionlint_and_the_schema(tmp_path: Path, name: str) -> None:
    text = docs_examples()[name]
    local = REMOTE_CALL.sub(r"uses: ./\1", text)
    assert local != text, "the example must call modelci's workflow pinned to a SHA"
    lint, schema = check_caller(tmp_path, local)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert schema.returncode == 0, schema.stdout + schema.stderr


@pytest.mark.slow
def test_under_act_the_model_job_runs_on_the_runner_the_caller_names(
    model_repo: ModelRepo, modelci_src: Path, tmp_path: Path
) -> None:
    """act runs a job only on a runner label it was given (``-P LABEL=-self-hosted``): the model
    job's JSON list reaches a mapped label and runs; the test job's label is not mapped, so it
    does not run; lint stays on ubuntu-latest and runs."""
    # a params change, so the plan gives the model job a project to run
    repo = model_repo.clone("improve", tmp_path / "repo")
    caller = repo / ".github" / "workflows" / "runners.yml"
    text = (repo / ".github" / "workflows" / "pr.yml").read_text(encoding="utf-8")
    assert text.count("    with:\n") == 1
    caller.write_text(
        text.replace(
            "    with:\n",
            "    with:\n"
            '      model-runs-on: \'["self-hosted", "modelci-large"]\'\n'
            "      test-runs-on: modelci-nowhere\n",
        ),
        encoding="utf-8",
    )
    env = harness.ActEnv(
        stub_root=model_repo.stub_root(tmp_path / "stubs"), modelci_src=modelci_src
    )
    done = harness.run_act(
        repo,
        "pull_request",
        pull_request_event(model_repo, 9, "improve", title="Tune"),
        caller,
        env,
        work=tmp_path / "act",
        secrets={"GITHUB_TOKEN": TOKEN},
        runner_labels=["modelci-large"],
    )
    # lint ran (on ubuntu-latest; whether it passes is the model repository's business)
    assert done.result("lint") in {"success", "failure"}, done.explain()
    assert done.result("model") == "success", done.explain()
    assert done.result("test") is None, done.explain()  # never given a runner
    assert "Skipping unsupported platform -- Try running with `-P modelci-nowhere=" in done.log

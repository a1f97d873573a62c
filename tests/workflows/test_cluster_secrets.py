"""The cluster's address and data.source's storage credentials reach every `dvc repro` of the
reusable workflows, and nothing else (docs/scale.md, "Credentials in CI").

Each reusable workflow declares the names of ``modelci.config.CLUSTER_SECRETS`` as optional
secrets; every step that reproduces the pipeline maps each one into its own ``env:`` (not the
job's, so the report, the tests and third-party actions never see them); a workflow that calls
another one that declares them passes all of them on by name (never ``secrets: inherit``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from modelci.config import CLUSTER_SECRETS
from tests.workflows.test_static import WORKFLOWS, load, triggers

pytestmark = pytest.mark.workflows

REPRO = re.compile(r"\b(dvc repro|modelci pr repro)\b")
SECRET_REF = re.compile(r"secrets\.(\w+)")


def _reusable() -> dict[str, dict[Any, Any]]:
    found = {}
    for path in WORKFLOWS:
        workflow = load(path)
        if "workflow_call" in triggers(workflow):
            found[path.name] = workflow
    return found


REUSABLE = _reusable()


def _declared(workflow: dict[Any, Any]) -> dict[str, Any]:
    return (triggers(workflow)["workflow_call"] or {}).get("secrets") or {}


def _repro_steps(workflow: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, step)
        for name, job in workflow["jobs"].items()
        for step in job.get("steps") or []
        if REPRO.search(str(step.get("run", "")))
    ]


def _uses_local(job: dict[str, Any]) -> str | None:
    uses = str(job.get("uses", ""))
    return Path(uses).name if uses.startswith("$/.github/workflows/") else None


def load_called(job: dict[str, Any]) -> dict[Any, Any]:
    called = _uses_local(job)
    assert called in REUSABLE, f"{job.get('uses')} is not a reusable workflow here"
    return REUSABLE[called]


def test_the_workflows_that_reproduce_are_the_expected_ones() -> None:
    # A new workflow that runs dvc repro joins this list (and gets the secrets) deliberately.
    reproducing = sorted(name for name, wf in REUSABLE.items() if _repro_steps(wf))
    assert reproducing == ["ci.yml", "monitor.yml", "release-project.yml", "retrain.yml"]


@pytest.mark.parametrize("name", sorted(REUSABLE))
def test_every_repro_step_gets_the_cluster_secrets_and_no_other_step_does(name: str) -> None:
    workflow = REUSABLE[name]
    declared = _declared(workflow)
    repro = _repro_steps(workflow)
    passes_on = [
        job
        for job in workflow["jobs"].values()
        if _uses_local(job) and set(CLUSTER_SECRETS) <= set(_declared(load_called(job)))
    ]
    if not repro and not passes_on:
        assert not set(CLUSTER_SECRETS) & set(declared), f"{name} declares what it never uses"
        return
    for secret in CLUSTER_SECRETS:
        assert secret in declared, f"{name}: on.workflow_call.secrets lacks {secret}"
        assert declared[secret].get("required") is False, f"{name}: {secret} must be optional"
    for job_name, step in repro:
        env = step.get("env") or {}
        for secret in CLUSTER_SECRETS:
            assert (
                env.get(secret) == f"${{{{ secrets.{secret} }}}}"
            ), f"{name}: job {job_name}, step {step.get('name')!r} does not pass {secret}"
    # Least exposure: outside the repro steps' env and the secrets handed to a called workflow,
    # no job env, step, action input or expression mentions them.
    for job_name, job in workflow["jobs"].items():
        assert not set(SECRET_REF.findall(str(job.get("env", {})))) & set(
            CLUSTER_SECRETS
        ), f"{name}: job {job_name} puts a cluster secret in the job's env"
        for step in job.get("steps") or []:
            if REPRO.search(str(step.get("run", ""))):
                continue
            leaked = set(SECRET_REF.findall(str(step))) & set(CLUSTER_SECRETS)
            assert not leaked, f"{name}: job {job_name}, step {step.get('name')!r} sees {leaked}"
    for job in passes_on:
        handed = job.get("secrets") or {}
        assert handed != "inherit"
        for secret in CLUSTER_SECRETS:
            assert (
                handed.get(secret) == f"${{{{ secrets.{secret} }}}}"
            ), f"{name}: the call of {job['uses']} does not pass {secret}"

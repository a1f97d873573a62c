"""How the retraining pull request gets its CI, given what the retrain workflow was handed.

On GitHub, a push or a pull request made with the workflow's own ``GITHUB_TOKEN`` starts no
workflow run (only ``workflow_dispatch`` and ``repository_dispatch`` are exempt). So
``modelci monitor open-pr`` chooses one of three ways, in this order:

- ``app``: a GitHub App installation token (``MODELCI_APP_TOKEN``, from
  actions/create-github-app-token) pushes the branch and opens the pull request; GitHub then
  starts the ``pull_request`` workflows as for any contributor's pull request;
- ``dispatch``: the branch is pushed and the pull request opened with ``GITHUB_TOKEN``, then the
  pull-request workflow (``--ci-workflow``, e.g. ``pr.yml``) is started with ``workflow_dispatch``
  on the branch, with the pull request's number as its ``pr-number`` input;
- ``none``: neither is configured: the pull request is opened, and its body and the job summary
  say that no CI runs on it and how to set it up, rather than leaving a PR with no checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from modelci.github_api import GitHub, GitHubError

Mode = Literal["app", "dispatch", "none"]
WORKFLOW_FILE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}\.ya?ml$")
SETUP = "modelci's docs/monitoring.md, section 'CI for the retraining pull request'"


@dataclass(frozen=True)
class CiPlan:
    """The way chosen: which token pushes and opens the PR, and which workflow is dispatched."""

    mode: Mode
    token: str
    workflow: str = ""


def plan(app_token: str, github_token: str, ci_workflow: str) -> CiPlan:
    """The App token when there is one, else dispatching ``ci_workflow`` when named, else none."""
    if ci_workflow and not WORKFLOW_FILE_RE.match(ci_workflow):
        raise GitHubError(
            f"--ci-workflow: expected a workflow file name such as pr.yml, got {ci_workflow[:80]!r}"
        )
    if app_token:
        return CiPlan("app", app_token)
    if not github_token:
        raise GitHubError("no GitHub token: set GITHUB_TOKEN (the workflow passes its token)")
    if ci_workflow:
        return CiPlan("dispatch", github_token, ci_workflow)
    return CiPlan("none", github_token)


def note(ci: CiPlan, head_sha: str) -> str:
    """The Markdown the PR body ends with and the job summary gets: what CI this PR has."""
    commit = head_sha[:12]
    if ci.mode == "app":
        return (
            f"**CI:** pushed and opened with the GitHub App's token, so this pull request's "
            f"workflows run on commit `{commit}` as on any other pull request."
        )
    if ci.mode == "dispatch":
        return (
            f"**CI:** `{ci.workflow}` was started with `workflow_dispatch` on commit `{commit}` "
            "(events of the workflow's own token start no `pull_request` run); its checks, "
            "`all-green` among them, are reported on that commit."
        )
    return (
        "> [!WARNING]\n"
        "> **No CI runs on this pull request.** It was pushed and opened with the workflow's "
        "`GITHUB_TOKEN`, and GitHub starts no workflow for events that token causes: no report, "
        "no `all-green` check, and after a merge `release-reviewed` finds no reviewed model.\n"
        "> Give the retrain workflow a GitHub App (secrets `MODELCI_APP_CLIENT_ID` and "
        "`MODELCI_APP_PRIVATE_KEY`) or the `ci-workflow` input (a pull-request workflow that "
        f"accepts `workflow_dispatch`): see {SETUP}. Until then, close and reopen this pull "
        "request to start its CI."
    )


def with_note(body: str, ci: CiPlan, head_sha: str) -> str:
    return f"{body.rstrip()}\n\n---\n{note(ci, head_sha)}\n"


def dispatch(github: GitHub, workflow: str, branch: str, pr_number: int) -> None:
    """Start ``workflow`` on ``branch`` (its head commit) for pull request ``pr_number``."""
    try:
        github.request(
            "POST",
            f"/actions/workflows/{workflow}/dispatches",
            {"ref": branch, "inputs": {"pr-number": str(pr_number)}},
        )
    except GitHubError as error:
        raise GitHubError(
            f"{error} (dispatching {workflow} needs `actions: write` in the retrain job and a "
            f"`workflow_dispatch` trigger with a `pr-number` input in {workflow})"
        ) from None

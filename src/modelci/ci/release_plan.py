"""Which projects a merge releases: ``modelci release plan``, the release's side of the plan.

The pull request's plan ran a model job for each project its change affected; the release runs
``modelci affected`` again, on the pushed commit against the branch before the push (the push
event's ``before``: every commit a rebase-merge pushed counts) or, without one (a new branch, a
dispatched run, a force push whose old tip is gone), against the commit's first parent (the branch
before a merge or squash), and releases exactly the projects it affects. A project nothing affected
is skipped with a one-line ``unchanged: nothing to release`` notice: a docs-only pull request left
no report to release, and needs none. An affected project still needs its reviewed report: the
release job of each one runs ``modelci release reviewed``, which fails without it
(``require-report``). The plan is computed from the pushed commit itself, not read from the pull
request's artifact, which the pull request's own code wrote.

Each released project is tagged on its own: the root project keeps ``model-v<N>``, a project in a
folder gets ``<name>/v<N>`` (its image ``<name>-v<N>``: an image tag holds no ``/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelci._proc import run
from modelci.ci.affected import AffectedError, Decision, changed_files, decide
from modelci.github import matrix_outputs
from modelci.projects import ROOT, Project, discover

UNCHANGED = "unchanged: nothing to release"
FIRST_COMMIT = "the first commit: nothing to compare it with"
ROOT_TAG_PREFIX = "model-v"


def tag_prefix(project: Project) -> str:
    """The git tag of the project's version N is this prefix and N: ``model-v`` for the root
    project (as in a single-project repository), ``<name>/v`` for one in a folder."""
    return ROOT_TAG_PREFIX if project.path == ROOT else f"{project.name}/v"


def image_tag_prefix(project: Project) -> str:
    """The serving image's tag prefix: the git tag's, with ``-`` for ``/`` (``fraud-v``)."""
    return tag_prefix(project).replace("/", "-")


def first_parent(root: Path, head: str) -> str | None:
    """The commit ``head``'s first parent (the branch before a merge); None for a root commit."""
    args = ["git", "rev-list", "--parents", "-n", "1", head, "--"]
    done = run(args, "git rev-list", error=AffectedError, cwd=root, timeout=60, check=False)
    if not done.ok:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AffectedError(
            f"git rev-list {head} failed in {root}: {lines[-1] if lines else 'no output'}"
        )
    commits = done.stdout.decode("utf-8").split()
    return commits[1] if len(commits) > 1 else None


def _known_commit(root: Path, ref: str) -> bool:
    """Whether ``ref`` names a commit of the checkout (an all-zero ``before`` names none)."""
    if not ref.strip("0"):
        return False
    args = ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]
    return run(args, "git rev-parse", error=AffectedError, cwd=root, timeout=60, check=False).ok


def release_base(root: Path, head: str, before: str = "") -> str | None:
    """What ``head`` is compared with: ``before`` (the push's previous tip) when the checkout
    has it, else ``head``'s first parent; None for a root commit with no ``before``."""
    return before if _known_commit(root, before) else first_parent(root, head)


def release_decisions(root: Path, head: str = "HEAD", before: str = "") -> list[Decision]:
    """One decision per project of ``root``: affected by ``head`` against ``release_base``;
    every project when there is nothing to compare with."""
    projects = discover(root)
    base = release_base(root, head, before)
    if base is None:
        return [Decision(project, True, FIRST_COMMIT) for project in projects]
    return decide(projects, changed_files(root, base, head))


def release_matrix(decisions: Sequence[Decision]) -> dict[str, Any]:
    """The release's matrix: one entry per affected project, with what its release job needs.

    ``report_project`` is the name ``release reviewed --project`` reads the report of, or ``""``
    when the repository has one project (its report is in the merged artifact, as before the
    plan).
    """
    single = len(decisions) == 1
    include = [
        {
            "path": d.project.path,
            "name": d.project.name,
            "registered_model": d.project.registered_model,
            "report_project": "" if single else d.project.name,
            "tag_prefix": tag_prefix(d.project),
            "image_tag_prefix": image_tag_prefix(d.project),
        }
        for d in decisions
        if d.affected
    ]
    return {"include": include}


def _annotation(text: str) -> str:
    """``text`` escaped for a workflow command's message (``%``, CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def plan_lines(decisions: Sequence[Decision]) -> list[str]:
    """One line per project: a ``::notice::`` annotation for each skipped one."""
    lines = []
    for decision in decisions:
        project = decision.project
        if decision.affected:
            lines.append(
                f"{project.name}: released as {project.registered_model} ({decision.reason})"
            )
        else:
            lines.append(_annotation(f"::notice::{project.name}: {UNCHANGED} ({decision.reason})"))
    if not decisions:
        lines.append(f"::notice::{UNCHANGED} (no project in this repository)")
    return lines


def plan_summary(decisions: Sequence[Decision]) -> str:
    """The plan job's summary: every project, released or unchanged, with the reason."""
    rows = [
        "## Release plan",
        "",
        "| project | registered model | release | why |",
        "|---|---|---|---|",
    ]
    for d in decisions:
        what = f"`{tag_prefix(d.project)}N`" if d.affected else UNCHANGED
        cells = [d.project.name, d.project.registered_model, what, d.reason]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def github_outputs(decisions: Sequence[Decision]) -> dict[str, str]:
    """The step outputs: ``matrix`` (one-line JSON) and ``count``."""
    return matrix_outputs(release_matrix(decisions))


__all__ = [
    "FIRST_COMMIT",
    "ROOT_TAG_PREFIX",
    "UNCHANGED",
    "first_parent",
    "github_outputs",
    "image_tag_prefix",
    "plan_lines",
    "plan_summary",
    "release_base",
    "release_decisions",
    "release_matrix",
    "tag_prefix",
]

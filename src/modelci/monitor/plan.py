"""Which projects the scheduled monitor checks: ``modelci monitor plan``, the monitor's side of the
plan that the pull request and the release take.

The monitor checks every project of the repository (``modelci projects``), or the ones the caller
names, each in its own job of a matrix. Each project has its own production window: the caller's
``window`` (and ``labels``) may hold the placeholder ``{project}``, replaced by each project's name
(``dvc:monitoring/{project}/predictions.jsonl``); with one project checked the window needs none,
so a single-project caller keeps its inputs. Each project keeps one monitoring issue, keyed by
its registered model name (``modelci.drift.github.marker``): the root project's issue is the one
a single-project repository already had. A project in a folder retrains on its own branch
(``modelci/retrain-<name>``); the root project keeps ``modelci/retrain``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError
from modelci.github import matrix_outputs
from modelci.projects import ROOT, Project, discover

PLACEHOLDER = "{project}"
ROOT_RETRAIN_BRANCH = "modelci/retrain"


class MonitorPlanError(ConfigError):
    """The monitor's inputs do not fit the repository's projects."""


def selected(projects: Sequence[Project], names: str) -> list[Project]:
    """The projects named in ``names`` (comma or space separated; "" for all), in plan order."""
    wanted = [name for name in re.split(r"[\s,]+", names.strip()) if name]
    if not wanted:
        return list(projects)
    known = {project.name: project for project in projects}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise MonitorPlanError(
            f"projects: no project named {', '.join(unknown)} "
            f"(the repository has: {', '.join(known) or 'none'})"
        )
    return [project for project in projects if project.name in wanted]


def _per_project(template: str, what: str, project: Project, count: int) -> str:
    """``template`` with ``{project}`` replaced by the project's name; refuses one window shared
    by several projects (each model's production data is its own)."""
    if template and count > 1 and PLACEHOLDER not in template:
        raise MonitorPlanError(
            f"{what} {template!r} has no {PLACEHOLDER} placeholder, but {count} "
            f"projects are monitored: each needs its own {what} (or name one with projects)"
        )
    return template.replace(PLACEHOLDER, project.name)


def retrain_branch(project: Project) -> str:
    """The branch a retraining pull request of ``project`` comes from."""
    return ROOT_RETRAIN_BRANCH if project.path == ROOT else f"{ROOT_RETRAIN_BRANCH}-{project.name}"


def monitor_matrix(
    projects: Sequence[Project], names: str = "", window: str = "", labels: str = ""
) -> dict[str, Any]:
    """The monitor's matrix: one entry per monitored project, with its own window and labels."""
    chosen = selected(projects, names)
    if not chosen:
        raise MonitorPlanError("no project in this repository to monitor")
    count = len(chosen)
    include = [
        {
            "path": project.path,
            "name": project.name,
            "registered_model": project.registered_model,
            "window": _per_project(window, "window", project, count),
            "labels": _per_project(labels, "labels", project, count),
            "retrain_branch": retrain_branch(project),
        }
        for project in chosen
    ]
    return {"include": include}


def plan(root: Path, names: str = "", window: str = "", labels: str = "") -> dict[str, Any]:
    return monitor_matrix(discover(root), names, window, labels)


def plan_summary(matrix: dict[str, Any]) -> str:
    rows = ["## Monitor plan", "", "| project | registered model | window |", "|---|---|---|"]
    for entry in matrix["include"]:
        cells = [entry["name"], entry["registered_model"], entry["window"]]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def github_outputs(matrix: dict[str, Any]) -> dict[str, str]:
    return matrix_outputs(matrix)


__all__ = [
    "PLACEHOLDER",
    "ROOT_RETRAIN_BRANCH",
    "MonitorPlanError",
    "github_outputs",
    "monitor_matrix",
    "plan",
    "plan_summary",
    "retrain_branch",
    "selected",
]

"""``modelci projects`` and ``modelci affected``: parsers and handlers (YAML/git read on run)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _root(value: str) -> Path:
    return Path(value).resolve()


def cmd_projects(args: argparse.Namespace) -> int:
    from modelci.projects import discover

    projects = discover(args.root)
    if args.json:
        listed = [
            {
                "path": p.path,
                "name": p.name,
                "registered_model": p.registered_model,
                "stages": [s.name for s in p.stages],
                "dependencies": sorted(p.dependencies()),
            }
            for p in projects
        ]
        print(json.dumps(listed, indent=2))
        return 0
    rows = [("PATH", "NAME", "REGISTERED MODEL", "STAGES")]
    rows += [
        (p.path, p.name, p.registered_model, ",".join(s.name for s in p.stages)) for p in projects
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]  # the last column: as is
    for *padded, stages in rows:
        cells = [cell.ljust(width) for cell, width in zip(padded, widths, strict=True)]
        print("  ".join([*cells, stages]))
    if not projects:
        print(f"no project: no dvc.yaml under {args.root} runs a modelci stage", file=sys.stderr)
    return 0


def cmd_affected(args: argparse.Namespace) -> int:
    from modelci.ci.affected import (
        AffectedError,
        changed_files,
        check_budget,
        decide,
        plan,
        undeclared,
    )
    from modelci.projects import discover

    projects = discover(args.root)
    decisions = decide(projects, changed_files(args.root, args.base, args.head))
    problems = [line for project in projects for line in undeclared(args.root, project)]
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    if problems and args.strict:
        raise AffectedError(
            f"{len(problems)} undeclared local import(s) (--strict): {problems[0]}", problems
        )
    check_budget(decisions, args.max_projects)
    print(json.dumps(plan(decisions)))
    return 0


def _whole_number(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is negative")
    return number


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=_root,
        default=".",
        metavar="DIR",
        help="the repository's root folder (default: the current folder)",
    )


def register(sub: Any) -> None:
    projects = sub.add_parser(
        "projects",
        help="list the model projects of the repository",
        description="List the model projects: every folder whose dvc.yaml runs a modelci stage "
        "(or declares metrics), with its name, registered model name and stages. A repository "
        "with one project at its root lists one.",
    )
    _add_root(projects)
    projects.add_argument("--json", action="store_true", help="print JSON instead of a table")
    projects.set_defaults(handler=cmd_projects)

    affected = sub.add_parser(
        "affected",
        help="which projects a change affects (JSON for a GitHub Actions matrix)",
        description="Decide from `git diff --name-only BASE...HEAD` and each project's declared "
        "dependencies (stage deps, params files, dvc.yaml/dvc.lock, the root pyproject.toml and "
        "uv.lock) which projects a change affects, with the reason per project. Prints "
        '{"projects": [...], "matrix": {"include": [...]}, "count": N}. Warns on stderr when a '
        "stage's Python code imports a local package none of its deps covers.",
    )
    affected.add_argument("--base", required=True, metavar="REF", help="base git ref or commit")
    affected.add_argument(
        "--head", default="HEAD", metavar="REF", help="head git ref (default: %(default)s)"
    )
    affected.add_argument(
        "--strict", action="store_true", help="fail when a stage imports undeclared local code"
    )
    affected.add_argument(
        "--max-projects",
        type=_whole_number,
        metavar="N",
        help="fail when more than N projects would run, naming them",
    )
    _add_root(affected)
    affected.set_defaults(handler=cmd_affected)


def cmd_release_plan(args: argparse.Namespace) -> int:
    from modelci.ci.release_plan import github_outputs, plan_lines, plan_summary, release_decisions
    from modelci.github import write_outputs

    decisions = release_decisions(args.root, args.head, args.base)
    for line in plan_lines(decisions):
        print(line)
    write_outputs(github_outputs(decisions), plan_summary(decisions))
    return 0


def register_release(sub: Any) -> None:
    """Add ``plan`` to the ``modelci release`` group: the first thing the release runs."""
    release_plan = sub.add_parser(
        "plan",
        help="which projects a merge releases (a GitHub Actions matrix)",
        description="Decide, as modelci affected does, which projects the pushed commit --head "
        "changes against --base (the push's previous tip) or, when that is empty, all zeros or "
        "not in the checkout, against --head's first parent (every project when it has none). "
        "Prints one line per project, a '::notice::' 'unchanged: nothing to "
        "release' for each skipped one; writes matrix= (path, name, registered_model, "
        "report_project, tag_prefix, image_tag_prefix of each affected project) and count= to "
        "$GITHUB_OUTPUT and a table to $GITHUB_STEP_SUMMARY when set.",
    )
    release_plan.add_argument(
        "--head", default="HEAD", metavar="REF", help="the pushed commit (default: %(default)s)"
    )
    release_plan.add_argument(
        "--base",
        default="",
        metavar="REF",
        help="the branch's tip before the push (github.event.before; default: --head's first "
        "parent)",
    )
    _add_root(release_plan)
    release_plan.set_defaults(handler=cmd_release_plan)

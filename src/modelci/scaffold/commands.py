"""``modelci init``: parsers only; the handler imports pandas and scikit-learn when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modelci.scaffold.estimators import ENGINES, KNOWN_ESTIMATORS


def cmd_init(args: argparse.Namespace) -> int:
    from modelci.scaffold.init import Options, ScaffoldError, describe, make_plan, write

    if args.directory is None and args.add is None:
        raise ScaffoldError(
            "DIRECTORY is required (it may be left out with --add: the current one)"
        )
    options = Options(
        directory=Path(args.directory or ".").resolve(),
        data=Path(args.data).resolve(),
        target=args.target,
        task=args.task,
        modelci=args.modelci,
        null_target=args.null_target,
        repository=args.repository,
        workflows_ref=args.workflows_ref,
        force=args.force,
        lock=not args.no_lock,
        git=not args.no_git,
        name=args.name,
        estimator=args.estimator,
        engine=args.engine,
        add=args.add,
    )
    plan = make_plan(options)
    lines = describe(plan, options)
    if args.dry_run:
        print("\n".join(["modelci init --dry-run: nothing written; the plan:", *lines]))
        return 0
    notes = write(plan, options)
    ready = f"init: {options.directory} is ready: cd there, then `uv run dvc repro`"
    if options.add is not None:
        ready = (
            f"init: the project {options.add} is ready: `uv run dvc repro {options.add}/dvc.yaml`"
            f", then `uv run pytest {options.add}/tests`"
        )
    print("\n".join([*lines, *notes, ready]))
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "init",
        help="create a model repository from a data file",
        description=(
            "Create a complete model repository in DIRECTORY from a data file: pyproject.toml "
            "pinned to this modelci, uv.lock, dvc.yaml, params.yaml inferred from the data, the "
            "workflow callers, passing tests, git + DVC with the data tracked. One commit holds "
            "only the files init writes (never the data, never files already there); an existing "
            "repository must have no uncommitted changes; a failed step leaves DIRECTORY as it "
            "was."
        ),
    )
    parser.add_argument(
        "directory",
        nargs="?",
        metavar="DIRECTORY",
        help="the new repository (created if missing; may be an existing repository); with "
        "--add, the existing repository (default: the current folder)",
    )
    parser.add_argument(
        "--add",
        metavar="FOLDER",
        help="add one more model project in FOLDER (e.g. models/fraud) of an existing git "
        "repository: its own dvc.yaml, params.yaml, tests and data, sharing the root "
        "pyproject.toml and uv.lock; refused when its name, registered model name or outputs "
        "clash with another project's",
    )
    parser.add_argument(
        "--name",
        metavar="NAME",
        help="the project and package name (default: from DIRECTORY's name); a name that a "
        "dependency or the standard library uses is refused; with --add, the registered model "
        "name (default: FOLDER's name)",
    )
    parser.add_argument("--data", required=True, metavar="FILE", help=".csv or .parquet file")
    parser.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    parser.add_argument(
        "--task",
        choices=("binary", "multiclass", "regression"),
        help="override the task inferred from the target",
    )
    parser.add_argument(
        "--estimator",
        choices=list(KNOWN_ESTIMATORS),
        metavar="CLASS",
        help="train.estimator, with starting params (default: scikit-learn's "
        "HistGradientBoosting for the task, or with --engine dask xgboost.dask.DaskXGB*); "
        "xgboost.* and lightgbm.* add the boosting extra to the modelci dependency, the Dask "
        f"learners need --engine dask. One of: {', '.join(KNOWN_ESTIMATORS)}",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="compute.engine: local (default: the stages run in this process) or dask (on the "
        "Dask scheduler at $DASK_SCHEDULER_ADDRESS: the compute section, a source stage, the "
        "dask extra, callers passing the cluster's secrets; default estimator XGBoost's Dask "
        "learner, a scikit-learn one refused; docs/scale.md)",
    )
    parser.add_argument(
        "--modelci",
        metavar="SPEC",
        help="the dependency line for modelci (default: this version, modelci[serve,onnx]==X.Y.Z); "
        "e.g. 'modelci[serve,onnx] @ file:///abs/modelci-0.2.0-py3-none-any.whl'",
    )
    parser.add_argument(
        "--null-target",
        choices=("error", "drop"),
        default="error",
        help="rows whose target is null: refuse the data (default) or drop them",
    )
    parser.add_argument(
        "--repository", metavar="OWNER/NAME", help="where modelci's reusable workflows live"
    )
    parser.add_argument(
        "--workflows-ref",
        metavar="SHA",
        help="commit of modelci's workflows to pin (default: the commit of this release)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument("--no-lock", action="store_true", help="do not run `uv lock`")
    parser.add_argument("--no-git", action="store_true", help="no git init and no commit")
    parser.set_defaults(handler=cmd_init)

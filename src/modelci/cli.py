"""The ``modelci`` command line: every real step the pipeline and the workflows run.

``main(argv)`` is testable. Only argparse is imported up front; each command imports its heavy
libraries (pandas, scikit-learn, MLflow) when it runs, so ``modelci --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelci import __version__
from modelci.options import add_params, add_verbose

Handler = Callable[[argparse.Namespace], int]


def _params(args: argparse.Namespace) -> Any:
    from modelci.config import load_params

    return load_params(Path(args.params))


def _params_with_estimator(args: argparse.Namespace) -> Any:
    """The params, with the model they name (``train.estimator`` and its keyword arguments, or
    the ``train.pipeline`` factory) checked before any work (prepare checks them too: ``dvc
    repro`` then fails at its first stage, not after the split)."""
    params = _params(args)
    _check_model(params)
    return params


def _check_model(params: Any) -> None:
    """Build the model the params name (imports its library): the check of ``train:``."""
    from modelci.pipeline import cluster
    from modelci.pipeline.train import make_model

    cluster.check_estimator(params)
    if params.compute.engine == "dask":
        cluster.make_distributed(params.data, params.train, client=None)
    else:
        make_model(params.data, params.train)


def cmd_source(args: argparse.Namespace) -> int:
    from modelci.config import load_data_params
    from modelci.data.locations import record_versions
    from modelci.fileio import write_json
    from modelci.pipeline.cluster import SOURCE_RECORD

    record = record_versions(load_data_params(Path(args.params)).source)
    write_json(SOURCE_RECORD, record)
    print(f"source: {len(record['files'])} {record['format']} file(s) -> {SOURCE_RECORD}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from modelci.pipeline import prepare

    summary = prepare.run(_params_with_estimator(args))
    rows = summary["rows"]
    print(f"prepare: {rows['total']} rows -> train {rows['train']}, test {rows['test']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from modelci.pipeline import train

    sha256 = train.run(_params_with_estimator(args))
    print(f"train: wrote models/model.skops (sha256 {sha256[:12]})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from modelci.pipeline import evaluate

    scores = evaluate.run(_params_with_estimator(args))
    print("evaluate: " + ", ".join(f"{name}={value:.4f}" for name, value in sorted(scores.items())))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from modelci.pipeline import export

    note = export.run(_params(args))
    print(f"export: wrote models/onnx ({note})")
    return 0


def cmd_check_params(args: argparse.Namespace) -> int:
    """Every check of the params; the model check (seconds of scikit-learn imports) is skipped
    when the same check passed before with the same key (modelci.pipeline.check_cache)."""
    from modelci.config import checked_model_tests
    from modelci.pipeline import check_cache

    path = Path(args.params)
    params = _params(args)
    key = None if args.no_cache else check_cache.check_key(path, params.train)
    cached = key is not None and check_cache.passed_before(path, key)
    if not cached:
        _check_model(params)
    checked_model_tests(params.model_tests, params.data, args.params)
    if key is not None and not cached:
        check_cache.remember(path, key)
    note = " (model check: passed before with the same params, distributions and code)"
    print(f"{args.params}: ok ({params.data.task} on {params.data.source})" + note * cached)
    return 0


COMMANDS: dict[str, tuple[Handler, str]] = {
    "source": (
        cmd_source,
        "record the version of every file data.source names, for dvc.lock (data/source.json)",
    ),
    "prepare": (cmd_prepare, "validate the raw data and split it into train and test"),
    "train": (cmd_train, "fit the model pipeline and write models/model.skops"),
    "evaluate": (cmd_evaluate, "write metrics, slice metrics, plot data and the model card"),
    "export": (cmd_export, "convert the model to ONNX and check it against scikit-learn"),
    "check-params": (cmd_check_params, "validate params.yaml and exit"),
}

# The command groups, by the moment they serve, and the light ``register(sub)`` functions
# ("module:function") that add their commands. A group with no help text is a single command
# (``serve``, ``init``) registered at the top level.
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pr": (
        "the pull request: report, gate, check-lock",
        ("modelci.ci.commands:register",),
    ),
    "registry": (
        "the model registry: register, promote, rollback, status",
        ("modelci.registry.commands:register",),
    ),
    "release": (
        "the release on merge: plan, reviewed, image, publish, deploy",
        (
            "modelci.ci.project_commands:register_release",
            "modelci.registry.commands:register_release",
        ),
    ),
    "serve": ("", ("modelci.serving.commands:register",)),
    "monitor": (
        "production: drift, fetch-window, issue, refresh-data, open-pr, alert-rules, canary",
        (
            "modelci.drift.commands:register",
            "modelci.drift.github_commands:register",
            "modelci.monitor.commands:register",
        ),
    ),
    "init": ("", ("modelci.scaffold.commands:register",)),
    # Several models in one repository: `modelci projects` and `modelci affected`.
    "projects": ("", ("modelci.ci.project_commands:register",)),
}

# The flat names of the previous release, kept for one release: they run the grouped command
# after one deprecation line on stderr and are not listed in ``modelci --help``.
ALIASES: dict[str, tuple[str, str]] = {
    "report": ("pr", "report"),
    "gate": ("pr", "gate"),
    "check-lock": ("pr", "check-lock"),
    "register": ("registry", "register"),
    "promote": ("registry", "promote"),
    "rollback": ("registry", "rollback"),
    "status": ("registry", "status"),
    "release-reviewed": ("release", "reviewed"),
    "release-image": ("release", "image"),
    "release-publish": ("release", "publish"),
    "deploy": ("release", "deploy"),
    "drift": ("monitor", "drift"),
    "fetch-window": ("monitor", "fetch-window"),
    "monitor-issue": ("monitor", "issue"),
    "refresh-data": ("monitor", "refresh-data"),
    "open-pr": ("monitor", "open-pr"),
    "alert-rules": ("monitor", "alert-rules"),
    "canary": ("monitor", "canary"),
}


def _register(target: str, sub: Any) -> None:
    module, _, function = target.partition(":")
    getattr(importlib.import_module(module), function)(sub)


def _leaves(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of every runnable command under ``parser`` (a group's commands, not it)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _leaves(child) or [child]
    return found


def build_parser(prog: str = "modelci") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="CI/CD for machine-learning model repositories."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbose(parser, default=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_params(command)
        command.set_defaults(handler=handler)
        if handler is cmd_check_params:
            command.add_argument(
                "--no-cache",
                action="store_true",
                help="check the model even if the same params passed before with the same "
                "installed distributions and code (.modelci/check-params.json)",
            )
    for name, (help_text, registers) in GROUPS.items():
        target = sub
        if help_text:
            group = sub.add_parser(name, help=help_text, description=f"Commands for {help_text}.")
            target = group.add_subparsers(
                dest="subcommand", metavar="COMMAND", required=True, help="one of:"
            )
        for register in registers:
            _register(register, target)
    for leaf in _leaves(parser):
        add_verbose(leaf)
    return parser


def resolve_alias(argv: Sequence[str], prog: str = "modelci") -> tuple[list[str], str | None]:
    """``argv`` with an old flat command name (``modelci report``) replaced by its group and
    command (``modelci pr report``), and the deprecation line to print (None: no old name)."""
    args = list(argv)
    for index, word in enumerate(args):
        if word == "--":
            break
        if word.startswith("-"):
            continue  # the top-level options take no value: the first other word is the command
        if word not in ALIASES:
            break
        new = ALIASES[word]
        args[index : index + 1] = new
        note = (
            f"{prog}: '{prog} {word}' is deprecated and goes in the next release;"
            f" use '{prog} {' '.join(new)}'"
        )
        return args, note
    return args, None


# Set by main after a MemoryError: entry then ends the process at once (os._exit), skipping the
# libraries' exit handlers, which can wait forever on what the failed allocation left behind
# (Arrow's thread pool after a refused malloc, seen here: docs/scale.md, "The scale-out").
_OUT_OF_MEMORY: dict[str, bool] = {}


def main(argv: Sequence[str] | None = None, prog: str = "modelci") -> int:
    """Run one command; user errors print one line (details with --verbose) and exit non-zero."""
    from modelci.errors import ModelCIError

    _OUT_OF_MEMORY.clear()
    argv, deprecation = resolve_alias(sys.argv[1:] if argv is None else argv, prog)
    if deprecation is not None:
        print(deprecation, file=sys.stderr)
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    command = " ".join(filter(None, (args.command, getattr(args, "subcommand", None))))
    try:
        return int(args.handler(args))
    except ModelCIError as error:
        print(f"{prog} {command}: error: {error}", file=sys.stderr)
        details = [line for line in error.details if line != str(error)]
        for line in details if args.verbose or len(details) <= 20 else details[:20]:
            print(f"  {line}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{prog} {command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError as error:
        _OUT_OF_MEMORY["now"] = True
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        print(
            f"{prog} {command}: error: out of memory ({detail}): the data "
            "does not fit in this process's memory; compute.engine: dask spreads it over a "
            "cluster (docs/scale.md)",
            file=sys.stderr,
        )
        if args.verbose:
            traceback.print_exc()
        return 1
    except Exception as error:
        print(
            f"{prog} {command}: unexpected error: {type(error).__name__}: {error}"
            + ("" if args.verbose else " (run with --verbose for the traceback)"),
            file=sys.stderr,
        )
        if args.verbose:
            traceback.print_exc()
        return 1


def entry() -> None:
    code = main()
    if _OUT_OF_MEMORY.get("now"):
        import os

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # a closed pipe must not bring the wait back
                stream.flush()
        os._exit(code)
    sys.exit(code)

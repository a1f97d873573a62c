"""The ``modelci`` command line: every real step the pipeline and the workflows run.

``main(argv)`` is testable. Only argparse is imported up front; each command imports its heavy
libraries (pandas, scikit-learn, MLflow) when it runs, so ``modelci --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelci import __version__

Handler = Callable[[argparse.Namespace], int]


def _params(args: argparse.Namespace) -> Any:
    from modelci.config import load_params

    return load_params(Path(args.params))


def _params_with_estimator(args: argparse.Namespace) -> Any:
    """The params, with the model they name (``train.estimator`` and its keyword arguments, or
    the ``train.pipeline`` factory) checked before any work (prepare checks them too: ``dvc
    repro`` then fails at its first stage, not after the split)."""
    from modelci.pipeline.train import make_model

    params = _params(args)
    make_model(params.data, params.train)
    return params


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
    from modelci.config import load_params
    from modelci.pipeline import export

    note = export.run(load_params(Path(args.params)))
    print(f"export: wrote models/onnx ({note})")
    return 0


def cmd_check_params(args: argparse.Namespace) -> int:
    from modelci.config import checked_model_tests

    params = _params_with_estimator(args)
    checked_model_tests(params.model_tests, params.data, args.params)
    print(f"{args.params}: ok ({params.data.task} on {params.data.source})")
    return 0


def _add_params_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params",
        default="params.yaml",
        metavar="FILE",
        help="parameters file (default: %(default)s)",
    )


COMMANDS: dict[str, tuple[Handler, str]] = {
    "prepare": (cmd_prepare, "validate the raw data and split it into train and test"),
    "train": (cmd_train, "fit the model pipeline and write models/model.skops"),
    "evaluate": (cmd_evaluate, "write metrics, slice metrics, plot data and the model card"),
    "export": (cmd_export, "convert the model to ONNX and check it against scikit-learn"),
    "check-params": (cmd_check_params, "validate params.yaml and exit"),
}


def build_parser(prog: str = "modelci") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="CI/CD for machine-learning model repositories."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print details and tracebacks on errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        _add_params_option(command)
        command.set_defaults(handler=handler)
    for extension in EXTENSIONS:
        importlib.import_module(extension).register(sub)
    return parser


# Modules that add command groups (report/gate, registry, serve, init) with a light
# ``register(sub)``.
EXTENSIONS: tuple[str, ...] = (
    "modelci.ci.commands",
    "modelci.registry.commands",
    "modelci.serving.commands",
    "modelci.scaffold.commands",
    "modelci.drift.commands",
    "modelci.monitor.commands",
)


def main(argv: Sequence[str] | None = None, prog: str = "modelci") -> int:
    """Run one command; user errors print one line (details with --verbose) and exit non-zero."""
    from modelci.errors import ModelCIError

    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ModelCIError as error:
        print(f"{prog} {args.command}: error: {error}", file=sys.stderr)
        details = [line for line in error.details if line != str(error)]
        for line in details if args.verbose or len(details) <= 20 else details[:20]:
            print(f"  {line}", file=sys.stderr)
        if args.verbose:
            traceback.print_exc()
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        print(
            f"{prog} {args.command}: unexpected error: {type(error).__name__}: {error}"
            + ("" if args.verbose else " (run with --verbose for the traceback)"),
            file=sys.stderr,
        )
        if args.verbose:
            traceback.print_exc()
        return 1


def entry() -> None:
    sys.exit(main())

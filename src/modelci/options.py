"""Command-line options that many ``modelci`` commands share, each declared once here.

Argparse only: every feature's ``register(sub)`` adds them to its parsers, and ``modelci.cli``
adds ``--verbose`` to all of them.
"""

from __future__ import annotations

import argparse

DEFAULT_PARAMS = "params.yaml"


def add_params(
    parser: argparse.ArgumentParser, what: str = "", default: str = DEFAULT_PARAMS, env: str = ""
) -> None:
    """``--params FILE``: the parameters file; ``what`` names the sections the command reads,
    ``env`` the environment variable that sets ``default`` (``modelci serve``)."""
    detail = f": {what}" if what else ""
    source = f"; {env}" if env else ""
    parser.add_argument(
        "--params",
        default=default,
        metavar="FILE",
        help=f"parameters file{detail} (default: %(default)s{source})",
    )


def add_verbose(parser: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``-v/--verbose``, accepted before the command (``modelci -v pr report``, the only place
    before the groups) and after it (``modelci pr report -v``). A command's parser declares it
    with a suppressed default so that it does not reset a ``-v`` given before the command."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="print details and tracebacks on errors",
    )

"""docs/cli.md, rendered from the CLI's own argparse parsers (`make docs`), and its check.

python -m tests.cli_reference          # rewrite docs/cli.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from modelci.cli import ALIASES, build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
INTRO = """# CLI reference

One command, `modelci`, does all the work the pipeline stages and the workflows call. The
pipeline stages are top-level commands (a model repository's `dvc.yaml` calls them); the others
are grouped by the moment they serve: `modelci pr`, `modelci registry`, `modelci release` and
`modelci monitor`, beside `modelci serve` and `modelci init`.
`modelci COMMAND --help` prints the same. Errors print one line naming what is wrong and where
(and the failing checks below it); they exit 2 for a usage or configuration mistake, 1 otherwise;
`--verbose`, before or after the command (`modelci -v pr report ...`, `modelci pr report -v ...`),
adds the traceback. This page is written by `make docs` from the parsers themselves, and a test
fails when it is out of date.
"""


def choices(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """A parser's subcommands and their one-line help, in order (empty for a command)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (child, helps[name]) for name, child in action.choices.items()}
    return {}


def commands() -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """Every runnable command by its full name (``pr report``), with its one-line help."""
    found = {}
    for name, (parser, help_text) in choices(build_parser()).items():
        children = choices(parser)
        if not children:
            found[name] = (parser, help_text)
        for child, (leaf, leaf_help) in children.items():
            found[f"{name} {child}"] = (leaf, leaf_help)
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _link(name: str) -> str:
    return f"[`{name}`](#modelci-{name.replace(' ', '-')})"


def render() -> str:
    every = commands()
    lines = [INTRO, "| command | what it does |", "|---|---|"]
    for name, (_, help_text) in choices(build_parser()).items():
        inner = [full for full in every if full.startswith(f"{name} ")]
        lines.append(f"| {f'`{name}`' if inner else _link(name)} | {_cell(help_text)} |")
        lines += [f"| {_link(full)} | {_cell(every[full][1])} |" for full in inner]
    lines += [
        "",
        "## Old command names",
        "",
        "The flat names of the previous release still run the same command, after one line on",
        "stderr that names the new spelling; they go in the next release.",
        "",
        "| old | new |",
        "|---|---|",
    ]
    lines += [f"| `modelci {old}` | `modelci {' '.join(new)}` |" for old, new in ALIASES.items()]
    for name, (parser, help_text) in every.items():
        parser.prog = f"modelci {name}"
        lines += ["", f"## `modelci {name}`", "", f"{help_text[0].upper()}{help_text[1:]}."]
        lines += ["", "```text", parser.format_usage().strip(), "```", ""]
        lines += ["| option | meaning |", "|---|---|"]
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = ", ".join(action.option_strings) or action.metavar or action.dest
            text = (action.help or "").replace("%(default)s", str(action.default))
            lines.append(f"| `{flag}` | {_cell(text)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}")

"""docs/cli.md, rendered from the CLI's own argparse parsers (`make docs`), and its check.

python -m tests.cli_reference          # rewrite docs/cli.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from modelci.cli import build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
INTRO = """# CLI reference

One command, `modelci`, does all the work the pipeline stages and the workflows call.
`modelci COMMAND --help` prints the same. Errors print one line naming what is wrong and where
(and the failing checks below it); they exit 2 for a usage or configuration mistake, 1 otherwise;
`modelci --verbose COMMAND` adds the traceback. This page is written by `make docs` from the
parsers themselves, and a test fails when it is out of date.
"""


def _subcommands() -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help or "" for action in sub._choices_actions}
    return dict(sub.choices), helps


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    commands, helps = _subcommands()
    lines = [INTRO, "| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#modelci-{name}) | {_cell(helps[name])} |" for name in commands]
    for name, parser in commands.items():
        parser.prog = f"modelci {name}"
        lines += ["", f"## `modelci {name}`", "", f"{helps[name][0].upper()}{helps[name][1:]}."]
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

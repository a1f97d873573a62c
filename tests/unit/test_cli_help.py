"""Every ``modelci`` subcommand says what it does and every option has a help text."""

from __future__ import annotations

import argparse

import pytest

from modelci.cli import build_parser
from tests.cli_reference import choices

pytestmark = pytest.mark.unit


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every runnable command (``pr report``) and every group (``pr``), by full name."""
    found = {}
    for name, (parser, _) in choices(build_parser()).items():
        found[name] = parser
        found.update({f"{name} {child}": leaf for child, (leaf, _) in choices(parser).items()})
    return found


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_subcommand_has_a_description(name: str) -> None:
    description = _subcommands()[name].description
    assert description, f"`modelci {name} --help` shows no description"


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_has_help_and_no_empty_choice(name: str) -> None:
    parser = _subcommands()[name]
    undocumented = [a.option_strings or [a.dest] for a in _options(parser) if not a.help]
    assert undocumented == [], f"modelci {name}: options without help: {undocumented}"
    empty = [a.option_strings for a in _options(parser) if a.choices and "" in a.choices]
    assert empty == [], f"modelci {name}: an empty string among the choices of {empty}"


def test_deploy_target_empty_means_the_params_and_a_typo_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    deploy = ["release", "deploy", "--target"]
    assert parser.parse_args([*deploy, ""]).target == ""  # release.yml's unset input
    assert parser.parse_args([*deploy, "registry"]).target == "registry"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*deploy, "kubernets"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'kubernets' (choose from none, registry" in capsys.readouterr().err

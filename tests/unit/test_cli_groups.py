"""The grouped CLI: stages at the top, the rest in groups, old flat names as hidden aliases that
print one deprecation line and run the same handler with the same exit code."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from modelci import cli
from modelci.cli import ALIASES, GROUPS, build_parser, main, resolve_alias
from tests.cli_reference import choices, commands

pytestmark = pytest.mark.unit

# The commands that took --params before the groups (old name -> new spelling where it moved).
TOOK_PARAMS = [
    "prepare", "train", "evaluate", "export", "check-params", "pr report", "pr gate",
    "registry register", "registry promote", "registry rollback", "registry status",
    "release reviewed", "release image", "release publish", "release deploy", "serve",
    "monitor drift", "monitor issue", "monitor refresh-data", "monitor alert-rules",
    "monitor canary",
]  # fmt: skip


def _help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_lists_at_most_16_entries_and_no_old_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    listed = list(choices(build_parser()))
    assert len(listed) <= 16, listed
    assert set(listed).isdisjoint(ALIASES), "an old name is listed in modelci --help"
    out = _help(capsys, ["--help"])
    for name in listed:
        assert f"\n    {name} " in out or f"\n    {name}\n" in out
    assert "release-image" not in out
    assert "monitor-issue" not in out


@pytest.mark.parametrize("group", [name for name, (text, _) in GROUPS.items() if text])
def test_each_group_lists_its_commands(group: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(capsys, [group, "--help"])
    inner = [name.split(" ", 1)[1] for name in commands() if name.startswith(f"{group} ")]
    assert inner, f"modelci {group} has no commands"
    assert all(f"    {name}" in out for name in inner)


def test_every_alias_names_a_grouped_command() -> None:
    assert {" ".join(new) for new in ALIASES.values()} <= set(commands())


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    """Every command's handler replaced by one that records its arguments and returns 7 (the
    register functions look the handler up when the parser is built)."""
    calls: list[argparse.Namespace] = []

    def record(args: argparse.Namespace) -> int:
        calls.append(args)
        return 7

    for _, registers in GROUPS.values():
        for target in registers:
            module = importlib.import_module(target.partition(":")[0])
            for name in dir(module):
                if name.startswith("cmd_"):
                    monkeypatch.setattr(module, name, record)
    return calls


REQUIRED = {  # the arguments each command requires, beyond its name
    "pr report": ["--base", "main"],
    "release reviewed": ["--repo", "o/n", "--commit", "c" * 40],
    "release image": ["--image", "ghcr.io/o/n", "--tag", "t"],
    "release publish": ["--version", "3"],
    "monitor drift": ["--current", "log"],
    "monitor fetch-window": ["--source", "file:///w.jsonl", "--out", "w"],
    "monitor issue": ["--drift", "drift.json", "--repo", "o/n"],
    "monitor refresh-data": ["--window", "w", "--labels", "l.csv"],
    "monitor open-pr": ["--repo", "o/n", "--branch", "b", "--title", "t", "--body-file", "b.md"],
    "monitor canary": ["--prometheus", "http://127.0.0.1:9"],
}


@pytest.mark.parametrize("old", sorted(ALIASES))
def test_an_old_name_runs_the_same_handler_after_one_deprecation_line(
    old: str, recorded: list[argparse.Namespace], capsys: pytest.CaptureFixture[str]
) -> None:
    new = list(ALIASES[old])
    rest = REQUIRED.get(" ".join(new), [])
    assert main([*new, *rest]) == 7
    assert capsys.readouterr().err == ""
    assert main([old, *rest]) == 7
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"modelci: 'modelci {old}' is deprecated and goes in the next release;"
        f" use 'modelci {' '.join(new)}'"
    ]
    grouped, aliased = vars(recorded[0]), vars(recorded[1])
    assert grouped == aliased


def test_an_old_name_keeps_a_real_commands_result_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = ["--params", str(tmp_path / "missing.yaml")]
    assert main(["monitor", "alert-rules", *params]) == 2
    new = capsys.readouterr()
    assert main(["alert-rules", *params]) == 2
    old = capsys.readouterr()
    assert old.out == new.out
    assert old.err.splitlines()[1:] == new.err.splitlines()
    assert new.err.startswith("modelci monitor alert-rules: error: ")


def test_a_real_release_command_runs_under_both_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--image", "ghcr.io/o/n", "--tag", "t", "--target", "none"]
    assert main(["release", "image", *argv]) == 0
    assert main(["release-image", *argv]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["release-image: deploy target 'none' needs no image: none was built"] * 2


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["pr", "gate"], False),
        (["-v", "pr", "gate"], True),
        (["--verbose", "pr", "gate"], True),
        (["pr", "gate", "--verbose"], True),
        (["pr", "gate", "-v"], True),
        (["-v", "gate"], True),  # the old name after the top-level option
        (["gate", "-v"], True),
        (["serve", "-v"], True),
        (["-v", "train"], True),
        (["train"], False),
    ],
)
def test_verbose_before_and_after_the_command(
    argv: list[str],
    verbose: bool,
    recorded: list[argparse.Namespace],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train = lambda args: recorded.append(args) or 7  # noqa: E731
    monkeypatch.setitem(cli.COMMANDS, "train", (train, cli.COMMANDS["train"][1]))
    main(argv)
    assert recorded[-1].verbose is verbose


@pytest.mark.parametrize("name", TOOK_PARAMS)
def test_params_is_accepted_where_it_was(name: str) -> None:
    parser = commands()[name][0]
    flags = {flag for action in parser._actions for flag in action.option_strings}
    assert "--params" in flags


@pytest.mark.parametrize(
    ("argv", "where"),
    [(["bogus"], "modelci: error: argument COMMAND: invalid choice: 'bogus'"),
     (["pr", "bogus"], "modelci pr: error: argument COMMAND: invalid choice: 'bogus'"),
     (["pr"], "modelci pr: error: the following arguments are required: COMMAND")],
)  # fmt: skip
def test_unknown_group_or_command_is_argparses_usage_error(
    argv: list[str], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert where in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status", "--json"], ["registry", "status", "--json"]),
        (["-v", "monitor-issue"], ["-v", "monitor", "issue"]),
        (["pr", "report"], ["pr", "report"]),
        (["serve", "--params", "report"], ["serve", "--params", "report"]),
        (["--", "report"], ["--", "report"]),
        ([], []),
    ],
)
def test_resolve_alias_rewrites_only_the_command_word(argv: list[str], expected: list[str]) -> None:
    assert resolve_alias(argv)[0] == expected
    assert (resolve_alias(argv)[1] is None) == (argv == expected)

"""The CLI: fast help, one-line errors with exit codes, details only with --verbose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelci import cli
from modelci.cli import main
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

HEAVY = ("pandas", "sklearn", "mlflow", "pandera", "dvc", "matplotlib")


def test_help_imports_no_heavy_library() -> None:
    """`modelci --help` stays fast because nothing heavy is imported to build the parser."""
    code = (
        "import sys\nfrom modelci.cli import build_parser\nbuild_parser()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("modelci ")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bogus"])
    assert exited.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_missing_params_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--params", str(tmp_path / "p.yaml")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"modelci train: error: {tmp_path / 'p.yaml'}: parameters file not found"]


def test_verbose_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--verbose", "train", "--params", str(tmp_path / "p.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback (most recent call last)" in err


def test_check_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-params", "--params", str(REPO_ROOT / "params.yaml")]) == 0
    assert "ok (binary on data/titanic.source.yaml)" in capsys.readouterr().out


def test_unexpected_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def explode(_: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.COMMANDS, "check-params", (explode, "validate"))
    code = main(["check-params"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [
        "modelci check-params: unexpected error: RuntimeError: boom "
        "(run with --verbose for the traceback)"
    ]


def test_python_s_own_out_of_memory_names_the_type_and_is_forgotten_by_the_next_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CPython's MemoryError carries no message; the flag that makes entry() end the process at
    once belongs to the call that ran out, not to a later one in the same process."""

    def exhausted(_: object) -> int:
        raise MemoryError

    monkeypatch.setitem(cli.COMMANDS, "check-params", (exhausted, "validate"))
    assert main(["check-params"]) == 1
    assert capsys.readouterr().err.startswith(
        "modelci check-params: error: out of memory (MemoryError): the data does not fit"
    )
    monkeypatch.setitem(cli.COMMANDS, "check-params", (lambda _: 0, "validate"))
    assert main(["check-params"]) == 0
    assert not cli._OUT_OF_MEMORY


# A command that runs out of memory, in a process whose exit handler would never return (as
# Arrow's thread pool did after a refused malloc, docs/scale.md "The scale-out").
OUT_OF_MEMORY = """
import atexit, sys, threading
from modelci import cli

def explode(_):
    raise MemoryError("malloc of size 41943040 failed")

atexit.register(threading.Event().wait)
cli.COMMANDS["check-params"] = (explode, "validate")
sys.argv = ["modelci", "check-params"]
cli.entry()
"""


def test_out_of_memory_is_one_line_and_ends_the_process() -> None:
    done = subprocess.run(
        [sys.executable, "-c", OUT_OF_MEMORY], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "modelci check-params: error: out of memory (MemoryError: malloc of size 41943040 "
        "failed): the data does not fit in this process's memory; compute.engine: dask spreads "
        "it over a cluster (docs/scale.md)"
    ]


def test_module_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelci", "--help"], capture_output=True, text=True, check=True
    )
    assert "prepare" in done.stdout
    assert "evaluate" in done.stdout


def test_the_cli_reference_page_is_up_to_date() -> None:
    from tests.cli_reference import PAGE, render

    assert PAGE.read_text(encoding="utf-8") == render(), "docs/cli.md is stale: run `make docs`"


def test_the_pytest_plugin_loads_without_the_heavy_libraries() -> None:
    """The entry point loads in every pytest run where modelci is installed: no pandas, no
    scikit-learn until a test module imports ModelChecks."""
    import subprocess
    import sys

    code = (
        "import sys, modelci.testing.plugin; "
        "print(sorted(m for m in ('pandas', 'sklearn', 'mlflow') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

"""``modelci._proc``: the one process runner and tool lookup."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

from modelci import _proc
from modelci.errors import ModelCIError

pytestmark = pytest.mark.unit

PY = sys.executable


class ToolError(ModelCIError):
    """A caller's own error type."""


def test_run_captures_output_and_passes_stdin_and_env() -> None:
    code = "import os, sys; print(sys.stdin.read() + os.environ['EXTRA'])"
    done = _proc.run([PY, "-c", code], stdin="in-", env={"EXTRA": "env"})
    assert (done.ok, done.text, done.stderr) == (True, "in-env\n", b"")


def test_a_failure_names_what_exits_and_the_last_line_in_the_callers_type() -> None:
    code = "import sys; print('first'); print('last', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ToolError, match=r"^python step failed \(exit 3\): last$") as error:
        _proc.run([PY, "-c", code], "python step", error=ToolError)
    assert error.value.details == []
    with pytest.raises(ToolError) as error:
        _proc.run([PY, "-c", code], "python step", error=ToolError, details=True)
    assert error.value.details == ["last"]


def test_unchecked_runs_return_the_exit_code() -> None:
    done = _proc.run([PY, "-c", "raise SystemExit(4)"], check=False)
    assert (done.ok, done.returncode) == (False, 4)


def test_a_command_is_named_by_its_tool_and_subcommand_never_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(_proc.ProcError, match=r"^git push failed \(exit \d+\)") as error:
        _proc.run(["git", "push", "--repo", "value-not-shown"], cwd=tmp_path)
    assert "value-not-shown" not in str(error.value)


def test_timeout_and_missing_tools_raise_one_line() -> None:
    with pytest.raises(ToolError, match=r"^sleeper did not finish within 1 s$"):
        _proc.run([PY, "-c", "import time; time.sleep(30)"], "sleeper", error=ToolError, timeout=1)
    with pytest.raises(ToolError, match=r"^missing: no-such-tool-xyz is not on PATH$"):
        _proc.run(["no-such-tool-xyz"], "missing", error=ToolError)
    with pytest.raises(ToolError, match=r"^no-such-tool-xyz is not on PATH \(install it\)$"):
        _proc.tool("no-such-tool-xyz", "install it", ToolError)


def test_which_finds_a_tool_beside_this_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "venv-tool"
    script.write_text("#!/bin/sh\necho from-venv\n", encoding="utf-8")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_proc, "_BESIDE_PYTHON", tmp_path)
    assert _proc.which("venv-tool") is None  # not executable
    script.chmod(0o755)
    assert _proc.which("venv-tool") == str(script)
    assert _proc.run(["venv-tool"]).text == "from-venv\n"


def test_secrets_and_their_base64_forms_are_masked_in_errors() -> None:
    token = "ghs_s3cr3t-T0ken"  # noqa: S105 - a test value
    forms = [
        token,
        base64.b64encode(token.encode()).decode(),
        base64.b64encode(f"x-access-token:{token}".encode()).decode(),
        base64.urlsafe_b64encode(f"x-access-token:{token}".encode()).decode().rstrip("="),
    ]
    code = f"import sys; print({' '.join(forms)!r}, file=sys.stderr); sys.exit(1)"
    with pytest.raises(ToolError) as error:
        _proc.run([PY, "-c", code], "push", error=ToolError, secrets=[token], details=True)
    shown = str(error.value) + "\n".join(error.value.details)
    assert "***" in shown
    for form in forms:
        assert form not in shown

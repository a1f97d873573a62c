"""The one process runner and tool lookup: every external tool modelci starts goes through here.

Commands are argument lists, never a shell. A failure raises the caller's error type (a
``ModelCIError``) with one line naming the command by what the caller calls it (``what``, e.g.
``git push --force``), never by its whole argument list, and the last line the tool printed. The
values given as ``secrets`` are masked in that line, with their base64 forms (a token sent as an
HTTP basic header is base64 of ``user:token``): a secret reaches a tool through ``env`` or stdin,
and never appears in argv, where every local user can read it in ``/proc/*/cmdline``.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess  # nosec B404: fixed argument lists, never a shell
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelci.errors import ModelCIError

MASK = "***"
# Tools installed in the same virtual environment as modelci, which need not be on PATH.
_BESIDE_PYTHON = Path(sys.executable).parent


class ProcError(ModelCIError):
    """A tool is missing, failed, or did not finish in time."""


@dataclass(frozen=True)
class Completed:
    """What a finished command returned (its output as bytes, ``text`` decoded)."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def which(name: str) -> str | None:
    """The absolute path of ``name`` on PATH, else next to this Python (a virtual environment
    that is not on PATH), else None."""
    found = shutil.which(name)
    if found is not None:
        return found
    sibling = _BESIDE_PYTHON / name
    return str(sibling) if sibling.is_file() and os.access(sibling, os.X_OK) else None


def tool(name: str, why: str = "", error: type[ModelCIError] = ProcError) -> str:
    """``which(name)``, or ``error`` saying it is not on PATH and ``why`` it is needed."""
    found = which(name)
    if found is None:
        raise error(f"{name} is not on PATH" + (f" ({why})" if why else ""))
    return found


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret and the forms a tool may print it in: base64 (standard and URL-safe, with
    and without padding) of the secret alone and as the password of a basic credential."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.add(secret)
        for raw in (secret, f"x-access-token:{secret}"):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                encoded = encode(raw.encode()).decode()
                forms.update({encoded, encoded.rstrip("=")})
    return sorted(forms, key=len, reverse=True)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``***``."""
    for form in secret_forms(secrets):
        text = text.replace(form, MASK)
    return text


def _name(argv: Sequence[str]) -> str:
    """The tool's file name and its subcommand (the first word that is not an option)."""
    words = [Path(argv[0]).name]
    if len(argv) > 1 and argv[1][:1].isalpha():
        words.append(argv[1])
    return " ".join(words)


def run(
    argv: Sequence[str],
    what: str = "",
    *,
    error: type[ModelCIError] = ProcError,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
    timeout: float = 600.0,
    check: bool = True,
    secrets: Sequence[str] = (),
    details: bool = False,
) -> Completed:
    """Run ``argv`` (its first word a path or a name looked up with ``which``) and capture its
    output; ``env`` is added to this process's environment.

    Raises ``error`` when the tool cannot start or outlives ``timeout`` seconds, and (with
    ``check``) when it exits non-zero: ``"{what} failed (exit N): {its last line}"``, with
    every output line as the error's details when ``details`` is set.
    """
    what = what or _name(argv)
    executable = argv[0] if os.sep in argv[0] else which(argv[0])
    if executable is None:
        raise error(f"{what}: {argv[0]} is not on PATH")
    data = stdin.encode() if isinstance(stdin, str) else stdin
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [executable, *argv[1:]],
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            cwd=cwd,
            env=None if env is None else {**os.environ, **env},
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise error(f"{what} did not finish within {timeout:.0f} s") from None
    except OSError as problem:
        raise error(mask(f"{what} could not run: {problem}", secrets)) from None
    result = Completed(done.returncode, done.stdout, done.stderr)
    if check and not result.ok:
        output = (done.stderr or done.stdout).decode("utf-8", "replace")
        lines = mask(output, secrets).strip().splitlines()
        raise error(
            f"{what} failed (exit {done.returncode})" + (f": {lines[-1][:300]}" if lines else ""),
            lines if details else (),
        )
    return result

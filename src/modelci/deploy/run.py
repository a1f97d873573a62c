"""Run a deploy tool (kubectl, docker/podman, gcloud, aws) with a fixed argument list."""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404: deploy tools with fixed argument lists, never a shell
from collections.abc import Mapping, Sequence

from modelci.deploy.errors import DeployError


def tool(name: str, target: str) -> str:
    """The absolute path of ``name`` on PATH, or DeployError naming the target that needs it."""
    found = shutil.which(name)
    if found is None:
        raise DeployError(f"{name} is not on PATH (the {target} target needs it)")
    return found


def run(
    argv: Sequence[str],
    what: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 600,
) -> str:
    """Run ``argv``; its stdout, or DeployError with ``what`` and the last line it printed."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeployError(f"{what} did not finish within {timeout:.0f} s") from None
    except OSError as error:
        raise DeployError(f"{what} could not run: {error}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise DeployError(
            f"{what} failed (exit {done.returncode})" + (f": {detail[-1][:300]}" if detail else "")
        )
    return done.stdout

"""The deploy tools (kubectl, docker/podman, gcloud, aws) through ``modelci._proc``, failing with
``DeployError``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelci import _proc
from modelci.deploy.errors import DeployError


def tool(name: str, target: str) -> str:
    """The absolute path of ``name`` on PATH, or DeployError naming the target that needs it."""
    return _proc.tool(name, f"the {target} target needs it", DeployError)


def run(
    argv: Sequence[str],
    what: str,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 600,
) -> str:
    """Run ``argv``; its stdout, or DeployError with ``what`` and the last line it printed."""
    done = _proc.run(argv, what, error=DeployError, env=env, stdin=stdin, timeout=timeout)
    return done.text

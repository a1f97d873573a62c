"""Helpers shared by the ``modelci serve`` integration tests (file and registry models)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from modelci.serving.process import ServerProcess, free_port
from tests.conftest import VENV_BIN, run, tool_env

MODELCI = str(VENV_BIN / "modelci")


def start_serve(repo: Path, *args: str, **env: str) -> ServerProcess:
    """``modelci serve ARGS`` on a free 127.0.0.1 port in ``repo``, once ``/ready`` answers 200;
    stopped by the caller (``stop()`` then ``cleanup()``)."""
    port = free_port()
    env = {"MODELCI_WORKERS": "1", **env}  # one process unless a test asks for more
    server = ServerProcess(
        [MODELCI, "serve", *args, "--port", str(port)], port, cwd=repo, env=tool_env(**env)
    )
    try:
        server.wait_ready()
    except Exception:
        server.cleanup()
        raise
    return server


def serve_fails(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``modelci serve ARGS`` expected to exit before serving (bounded by a timeout)."""
    return run(
        [MODELCI, "serve", *args, "--port", str(free_port())], repo, check=False, timeout=120, **env
    )

"""Start and stop a local HTTP server process by PID (the tests and the serving benchmarks).

The server listens on 127.0.0.1 on a free port; :meth:`ServerProcess.wait_ready` polls a URL in a
bounded loop and fails early with the server's output if the process exits.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess  # nosec B404: runs the commands the caller gives, without a shell
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _remove(name: str) -> None:
    Path(name).unlink(missing_ok=True)


class ServerProcess:
    """A server started with ``args`` in ``cwd``; output goes to a temporary log file."""

    def __init__(
        self,
        args: Sequence[str],
        port: int,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.port = port
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="modelci-server-", suffix=".log", delete=False
        )
        # The log outlives stop() (tests read it after); it goes with this object, or at exit.
        self._remove_log = weakref.finalize(self, _remove, self._log.name)
        self.process = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything the server wrote so far (all of it once stopped)."""
        if not self._log.closed:
            self._log.flush()
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, path: str = "/ready", timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode} before it was ready:\n"
                    + self.output()[-4000:]
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = http_get(self.port, path, timeout=2.0)
                if status == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"server not ready within {timeout:.0f} s:\n" + self.output()[-4000:])

    def signal(self, number: int) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, number)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the server (its process group, for servers with worker children), wait, and
        SIGKILL it if it does not exit in time; returns its exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        return int(self.process.returncode)

    def cleanup(self) -> None:
        self.stop()
        self._remove_log()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

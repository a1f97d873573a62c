"""A real Dask cluster for the tests and the benchmark: ``dask scheduler`` and ``dask worker``
processes on 127.0.0.1, each started by PID and stopped by PID (its process group: a worker's
nanny and the worker it forks).

The scheduler listens on a free port with its dashboard on 127.0.0.1 too; each worker has one
thread, a memory limit and a fixed name (``worker-0``, ``worker-1``...), the names the Dask engine
orders workers by (docs/scale.md, "Determinism").
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess  # nosec B404: starts the dask CLI with fixed arguments
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.process_support import free_port


def dask_cli() -> str | None:
    """The ``dask`` command of this interpreter's environment, if the dask extra is installed."""
    beside = Path(sys.executable).with_name("dask")
    return str(beside) if beside.exists() else shutil.which("dask")


class Cluster:
    """A scheduler and ``workers`` workers; ``address`` is ``tcp://127.0.0.1:PORT``."""

    def __init__(
        self,
        workers: int = 2,
        memory_limit: str = "1GB",
        threads: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        cli = dask_cli()
        if cli is None:
            raise RuntimeError("the dask CLI is not installed (the `dask` extra)")
        self._cli = cli
        self._dir = Path(tempfile.mkdtemp(prefix="modelci-dask-"))
        self.memory_limit = memory_limit
        self.env = {**os.environ, **(env or {})}
        self.threads = threads
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self._start(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dashboard-address",
                f"127.0.0.1:{self.dashboard_port}",
                "--scheduler-file",
                str(self._dir / "scheduler.json"),
            ],
        )
        self._wait_file(self._dir / "scheduler.json", self.scheduler)
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        for index in range(workers):
            self.add_worker(f"worker-{index}")
        self.wait_workers(workers)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self._dir / f"{name}.log").open("wb")
        return subprocess.Popen(
            [self._cli, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self._dir,
            env=self.env,
        )

    def add_worker(self, name: str) -> None:
        self.workers[name] = self._start(
            name,
            [
                "worker",
                self.address,
                "--name",
                name,
                "--host",
                "127.0.0.1",
                "--nthreads",
                str(self.threads),
                "--nworkers",
                "1",
                "--memory-limit",
                self.memory_limit,
                "--no-dashboard",
                "--local-directory",
                str(self._dir / name),
            ],
        )

    def log(self, name: str) -> str:
        path = self._dir / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def _wait_file(self, path: Path, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path.exists() and json.loads(path.read_text() or "{}").get("address"):
                return
            if process.poll() is not None:
                raise RuntimeError(f"dask scheduler exited:\n{self.log('scheduler')[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"dask scheduler not up in 120 s:\n{self.log('scheduler')[-3000:]}")

    def wait_workers(self, count: int, timeout: float = 180.0) -> None:
        """Wait until the scheduler has exactly ``count`` workers."""
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if len(client.scheduler_info(n_workers=-1)["workers"]) == count:
                    return
                for name, process in self.workers.items():
                    if process.poll() is not None and count > 0:
                        raise RuntimeError(f"dask {name} exited:\n{self.log(name)[-3000:]}")
                time.sleep(0.3)
        raise TimeoutError(f"{count} dask workers not connected within {timeout:.0f} s")

    @staticmethod
    def _stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker's process group (nanny and worker): no graceful hand-over."""
        process = self.workers[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.workers.values():
            self._stop(process)
        self._stop(self.scheduler)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

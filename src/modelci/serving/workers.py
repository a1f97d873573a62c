"""``modelci serve --workers N``: N forked worker processes listening on one port.

The parent reserves the port (a bound socket that never listens) and forks the workers; each
listens on the port through its own ``SO_REUSEPORT`` socket and runs its own event loop. With one
shared listening socket, the worker whose event loop woke first accepted a whole burst of new
connections (asyncio accepts up to its backlog per wake-up): 8 keep-alive clients landed 6 to 2
and the second worker idled. Per-worker sockets let the kernel spread connections by their
address hash (5 to 3 and 34 to 30 for 8 and 64 clients).

The parent then only relays signals: SIGTERM/SIGINT drain every worker, SIGHUP reloads every
worker, and SIGUSR1 from a worker (sent after ``POST /admin/reload`` succeeded there) reloads all
the others. A worker that exits while the server is not stopping stops the others (exit 1): a
model that fails to load fails the whole server at once instead of leaving it half up.

Metrics are shared through prometheus_client's multiprocess mode: every worker writes its
samples to files in one directory, and ``/metrics`` on any worker sums them.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

PARENT_ENV = "MODELCI_WORKER_PARENT"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
_RELAYED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD}


def cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: the cgroup v2 ``cpu.max`` quota (rounded up) or v1
    ``cpu.cfs_quota_us``, capped by the CPU affinity mask; at least 1."""
    available = len(os.sched_getaffinity(0))
    quota: float | None = None
    with contextlib.suppress(OSError, ValueError):
        limit, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if limit != "max":
            quota = int(limit) / int(period)
    if quota is None:
        with contextlib.suppress(OSError, ValueError):
            limit_us = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
            period_us = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
            if limit_us > 0:
                quota = limit_us / period_us
    if quota is not None:
        available = min(available, math.ceil(quota))
    return max(1, available)


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it each response's second write waits ~40 ms for a delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """The parent's socket: bound to ``port`` (0: a free one) so that it stays ours, never
    listening (the kernel hands connections only to listening sockets)."""
    return _bound_socket(host, port)


def listening_socket(host: str, port: int) -> socket.socket:
    """A worker's own listening socket on the reserved ``port``."""
    sock = _bound_socket(host, port)
    sock.listen(2048)
    return sock


def in_worker() -> bool:
    """True in a worker process of a multi-worker server."""
    return os.environ.get(PARENT_ENV) == str(os.getppid())


def reload_siblings() -> None:
    """Ask the parent to reload every other worker (after this one reloaded)."""
    if in_worker():
        os.kill(os.getppid(), signal.SIGUSR1)


def _say(text: str) -> None:
    print(f"modelci serve: {text}", file=sys.stderr, flush=True)


def run_workers(count: int, host: str, port: int, worker: Callable[[socket.socket], int]) -> int:
    """Fork ``count`` workers, each running ``worker`` on its own listening socket on ``port``
    (which the caller has reserved), and relay signals until all have exited."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="modelci-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(metrics_dir)
    os.environ[PARENT_ENV] = str(os.getpid())
    signal.pthread_sigmask(signal.SIG_BLOCK, _RELAYED)
    children: dict[int, int] = {}
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:  # the worker
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _RELAYED)
                code = 1
                try:
                    code = worker(listening_socket(host, port))
                except Exception as error:  # a worker's last word; the parent reports the exit
                    _say(f"worker {os.getpid()} failed: {type(error).__name__}: {error}")
                finally:
                    os._exit(code)
            children[pid] = index
        _say(f"{count} workers (pids {', '.join(map(str, children))})")
        return _relay(children, metrics_dir)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _relay(children: dict[int, int], metrics_dir: Path) -> int:
    from prometheus_client import multiprocess

    stopping = False
    worst = 0
    while children:
        info = signal.sigwaitinfo(_RELAYED)
        number = info.si_signo
        if number == signal.SIGCHLD:
            for pid, code in _reaped(children):
                multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]
                worst = max(worst, int(code != 0))
                if not stopping:
                    _say(f"worker {pid} exited with {code}; stopping the others")
                    stopping = True
                    worst = max(worst, 1)
                    _send_all(children, signal.SIGTERM)
        elif number in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            _send_all(children, number)
        elif number == signal.SIGHUP:
            _send_all(children, signal.SIGHUP)
        else:  # SIGUSR1: a worker reloaded; reload the others
            _send_all({pid: i for pid, i in children.items() if pid != info.si_pid}, signal.SIGHUP)
    return worst


def _reaped(children: dict[int, int]) -> list[tuple[int, int]]:
    done = []
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if children.pop(pid, None) is not None:
            done.append((pid, os.waitstatus_to_exitcode(status)))
    return done


def _send_all(children: dict[int, int], number: int) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)

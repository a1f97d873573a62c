"""``modelci serve --workers N``: N forked worker processes listening on one port.

The parent reserves the port (a bound socket that never listens) and forks the workers; each
listens on the port through its own ``SO_REUSEPORT`` socket and runs its own event loop. With one
shared listening socket, the worker whose event loop woke first accepted a whole burst of new
connections (asyncio accepts up to its backlog per wake-up): 8 keep-alive clients landed 6 to 2
and the second worker idled. Per-worker sockets let the kernel spread connections by their
address hash (5 to 3 and 34 to 30 for 8 and 64 clients).

The parent then only relays signals: SIGTERM/SIGINT drain every worker, SIGHUP reloads every
worker, and SIGUSR1 from a worker (sent after ``POST /admin/reload`` succeeded there) reloads all
the others. A worker that exits while the server is not stopping (an OOM kill, a crash in a
native runtime) is replaced by a fresh fork of the parent, which holds the verified model, after
a back-off (1 s, doubling to 16 s); the others keep serving meanwhile (each worker has its own
socket, so the kernel sends new connections only to live ones). More than
:data:`MAX_RESTARTS` restarts within :data:`RESTART_WINDOW` seconds is a crash loop: the parent
then stops every worker and exits 1, saying why. Each replacement counts itself in
``modelci_worker_restarts_total``.

Metrics are shared through prometheus_client's multiprocess mode: every worker writes its
samples to files in one directory, and ``/metrics`` on any worker sums them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modelci.errors import ModelCIError

log = logging.getLogger(__name__)

PARENT_ENV = "MODELCI_WORKER_PARENT"
RESTARTED_ENV = "MODELCI_WORKER_RESTARTED"  # set in a worker that replaces a dead one
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0  # seconds
FIRST_BACKOFF = 1.0  # seconds, doubled for each restart in the window
MAX_BACKOFF = 16.0
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


class PortInUseError(ModelCIError):
    """The port is served by another process: workers of one server share it, nobody else."""


def _in_use(host: str, port: int, error: OSError) -> PortInUseError:
    return PortInUseError(
        f"http://{host}:{port}: address already in use ({error.strerror}): another process or "
        "modelci server listens there; stop it or pick another --port"
    )


def _socket(host: str, *, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it each response's second write waits ~40 ms for a delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # SO_REUSEADDR: a restart binds while the last server's connections sit in TIME_WAIT
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _bind(sock: socket.socket, host: str, port: int) -> socket.socket:
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise _in_use(host, port, error) from None
        raise
    return sock


def exclusive_socket(host: str, port: int) -> socket.socket:
    """A single server's listening socket: no ``SO_REUSEPORT``, so no other server may join."""
    sock = _bind(_socket(host, shared=False), host, port)
    sock.listen(2048)
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """The parent's socket: bound to ``port`` (0: a free one) so that it stays ours, never
    listening (the kernel hands connections only to listening sockets).

    The workers share the port through ``SO_REUSEPORT``, which lets *any* socket of the same
    user with that option join, a second modelci server included. So a bind without it comes
    first: it fails on a port where anyone listens, and the server refuses to start.
    """
    if port:
        _bind(_socket(host, shared=False), host, port).close()
    return _bind(_socket(host, shared=True), host, port)


def listening_socket(host: str, port: int) -> socket.socket:
    """A worker's own listening socket on the reserved ``port``."""
    sock = _bind(_socket(host, shared=True), host, port)
    sock.listen(2048)
    return sock


def in_worker() -> bool:
    """True in a worker process of a multi-worker server."""
    return os.environ.get(PARENT_ENV) == str(os.getppid())


def restarted_worker() -> bool:
    """True in a worker that replaced a dead one."""
    return in_worker() and os.environ.get(RESTARTED_ENV) == "1"


def reload_siblings() -> None:
    """Ask the parent to reload every other worker (after this one reloaded)."""
    if in_worker():
        os.kill(os.getppid(), signal.SIGUSR1)


def _say(text: str) -> None:
    log.info("%s", text)


def run_workers(
    count: int,
    addresses: list[tuple[str, int]],
    worker: Callable[[list[socket.socket]], int],
) -> int:
    """Fork ``count`` workers, each running ``worker`` on its own listening sockets, one per
    ``(host, port)`` in ``addresses`` (ports the caller has reserved); relay signals and replace
    dead workers until all have exited."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="modelci-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(metrics_dir)
    os.environ[PARENT_ENV] = str(os.getpid())
    signal.pthread_sigmask(signal.SIG_BLOCK, _RELAYED)
    children: dict[int, int] = {}

    def spawn(index: int, restarted: bool) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _RELAYED)
            if restarted:
                os.environ[RESTARTED_ENV] = "1"
            code = 1
            try:
                code = worker([listening_socket(host, port) for host, port in addresses])
            except Exception as error:  # a worker's last word; the parent reports the exit
                _say(f"worker {os.getpid()} failed: {type(error).__name__}: {error}")
            finally:
                os._exit(code)
        children[pid] = index
        return pid

    try:
        for index in range(count):
            spawn(index, restarted=False)
        _say(f"{count} workers (pids {', '.join(map(str, children))})")
        return _relay(children, metrics_dir, spawn)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(metrics_dir, ignore_errors=True)


class _Restarts:
    """When dead workers are due to be replaced, and whether they died too often to try."""

    def __init__(self) -> None:
        self.recent: list[float] = []  # when each restart in the window was scheduled
        self.due: list[tuple[float, int]] = []  # (monotonic time, worker index)

    def schedule(self, index: int, now: float) -> float | None:
        """The back-off before replacing worker ``index``, or None past the limit."""
        self.recent = [t for t in self.recent if now - t < RESTART_WINDOW]
        if len(self.recent) >= MAX_RESTARTS:
            return None
        delay = min(FIRST_BACKOFF * 2.0 ** len(self.recent), MAX_BACKOFF)
        self.recent.append(now)
        self.due.append((now + delay, index))
        return delay

    def timeout(self, now: float) -> float | None:
        """Seconds until the next restart is due (None: none pending)."""
        if not self.due:
            return None
        first: float = min(t for t, _ in self.due)
        return max(0.0, first - now)

    def pop_due(self, now: float) -> list[int]:
        ready = [index for t, index in self.due if t <= now]
        self.due = [(t, index) for t, index in self.due if t > now]
        return ready


def _relay(children: dict[int, int], metrics_dir: Path, spawn: Callable[[int, bool], int]) -> int:
    from prometheus_client import multiprocess

    stopping = False
    worst = 0
    restarts = _Restarts()
    while children or (restarts.due and not stopping):
        wait = restarts.timeout(time.monotonic()) if not stopping else None
        info = signal.sigwaitinfo(_RELAYED) if wait is None else signal.sigtimedwait(_RELAYED, wait)
        if info is None:  # a restart is due
            for index in restarts.pop_due(time.monotonic()):
                pid = spawn(index, True)
                _say(f"worker {pid} started in place of a dead one")
            continue
        number = info.si_signo
        if number == signal.SIGCHLD:
            for pid, code, index in _reaped(children):
                multiprocess.mark_process_dead(pid, str(metrics_dir))  # type: ignore[no-untyped-call]
                if stopping:
                    worst = max(worst, int(code != 0))
                    continue
                delay = restarts.schedule(index, time.monotonic())
                if delay is None:
                    _say(
                        f"worker {pid} exited with {code}: {MAX_RESTARTS} workers restarted "
                        f"within {RESTART_WINDOW:.0f} s already; stopping the others"
                    )
                    stopping = True
                    worst = 1
                    _send_all(children, signal.SIGTERM)
                else:
                    _say(f"worker {pid} exited with {code}; replacing it in {delay:g} s")
        elif number in (signal.SIGTERM, signal.SIGINT):
            stopping = True
            _send_all(children, number)
        elif number == signal.SIGHUP:
            _send_all(children, signal.SIGHUP)
        else:  # SIGUSR1: a worker reloaded; reload the others
            _send_all({pid: i for pid, i in children.items() if pid != info.si_pid}, signal.SIGHUP)
    return worst


def _reaped(children: dict[int, int]) -> list[tuple[int, int, int]]:
    """The children that exited: pid, exit code (negative: the signal) and worker index."""
    done = []
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        index = children.pop(pid, None)
        if index is not None:
            done.append((pid, os.waitstatus_to_exitcode(status), index))
    return done


def _send_all(children: dict[int, int], number: int) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)

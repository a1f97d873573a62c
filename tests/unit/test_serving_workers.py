"""The default worker count (the CPU quota) and the serve options that bound connections."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelci.serving import workers
from modelci.serving.workers import cpu_quota

pytestmark = pytest.mark.unit


def test_the_cgroup_v2_quota_caps_the_workers(tmp_path: Path) -> None:
    available = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cpu_quota(tmp_path) == min(available, 2)
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert cpu_quota(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) == available


def test_the_cgroup_v1_quota_is_read_when_there_is_no_v2_file(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert cpu_quota(tmp_path) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--workers", "-1"], "--workers must be 0"),
        (["--header-timeout", "0"], "--header-timeout must be more than 0"),
        (["--keepalive-timeout", "-2"], "--keepalive-timeout must be more than 0"),
        (["--max-connections", "0"], "--max-connections must be at least 1"),
    ],
)
def test_bad_connection_options_are_refused(
    args: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from modelci.cli import main

    assert main(["serve", "--model", "models/model.skops", *args]) == 2  # a usage error
    assert text in capsys.readouterr().err


def test_worker_sockets_are_tcp_and_share_the_reserved_port() -> None:
    import socket

    from modelci.serving.workers import listening_socket, reserve_port

    with reserve_port("127.0.0.1", 0) as reserved:
        port = reserved.getsockname()[1]
        first, second = listening_socket("127.0.0.1", port), listening_socket("127.0.0.1", port)
        try:
            for sock in (first, second):
                assert sock.proto == socket.IPPROTO_TCP  # else responses wait for delayed ACKs
                assert sock.getsockname()[1] == port
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # a listening worker socket takes it; the reserved one never listens
        finally:
            first.close()
            second.close()


def test_dead_workers_are_restarted_with_a_back_off_until_the_limit() -> None:
    restarts = workers._Restarts()
    delays = [
        restarts.schedule(index % 2, now=float(index)) for index in range(workers.MAX_RESTARTS)
    ]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert restarts.timeout(now=4.0) == 0.0  # the first was due at 1.0
    assert restarts.pop_due(now=4.0) == [0, 1]  # due at 1.0 and 3.0
    assert restarts.schedule(0, now=5.0) is None  # a sixth within the window: a crash loop
    # once the window has passed, a death is a fresh start again
    assert restarts.schedule(0, now=4.0 + workers.RESTART_WINDOW) == 1.0

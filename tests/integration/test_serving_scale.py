"""``modelci serve`` at scale, as real processes on 127.0.0.1: two workers (predictions, metrics
summed, reload and drain across processes), read timeouts, keep-alive drains and a 100,000-row
body."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import run
from tests.integration.conftest import MODELCI, start_serve
from tests.process_support import ServerProcess, http_get

pytestmark = pytest.mark.integration

TOKEN = "scale-token"  # noqa: S105 - a test value
ROW = {
    "gender": "female",
    "age": 30.0,
    "class": "1st",
    "embarked": "Cherbourg",
    "fare": 70.0,
    "sibsp": 1,
    "parch": 0,
}
BOUND = 20.0  # seconds: a bound on waits, never an expected duration


@pytest.fixture(scope="module")
def workers(pipeline_repo: Path) -> Iterator[ServerProcess]:
    server = start_serve(
        pipeline_repo,
        "--model",
        "models/model.skops",
        "--workers",
        "2",
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--keepalive-timeout",
        "1",
        MODELCI_ADMIN_TOKEN=TOKEN,
    )
    yield server
    assert server.stop() == 0, server.output()
    server.cleanup()


def _post(port: int, path: str, body: bytes, content_type: str = "application/json") -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _metric(port: int, pattern: str) -> list[float]:
    _, body = http_get(port, "/metrics")
    return [float(v) for v in re.findall(pattern + r" ([0-9.e+]+)", body.decode())]


def _until(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_two_workers_serve_and_sum_their_metrics(workers: ServerProcess) -> None:
    before = sum(_metric(workers.port, r"modelci_predicted_rows_total"))
    for _ in range(20):  # a new connection each: the kernel spreads them over the workers
        status, headers, _ = _post(workers.port, "/predict", json.dumps(ROW).encode())
        assert status == 200
        assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    assert sum(_metric(workers.port, r"modelci_predicted_rows_total")) == before + 20
    pids = set(
        re.findall(
            r'modelci_model_info\{pid="(\d+)"', http_get(workers.port, "/metrics")[1].decode()
        )
    )
    assert len(pids) == 2


def test_an_admin_reload_reloads_every_worker(workers: ServerProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", workers.port, timeout=60)
    connection.request("POST", "/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert connection.getresponse().status == 200
    connection.close()
    assert _until(
        lambda: sum(_metric(workers.port, r'modelci_model_reloads_total\{outcome="ok"\}')) >= 2
    )


def test_100000_rows_are_scored_like_in_process(
    workers: ServerProcess, pipeline_repo: Path
) -> None:
    from modelci.config import load_service_params
    from modelci.modelfile import load_model_bytes
    from modelci.serving.runtime import SklearnPredictor
    from modelci.serving.schema import InputSchema

    params = load_service_params(pipeline_repo / "params.yaml")
    schema = InputSchema.from_params(params.data)
    rows = schema.example_rows(100_000, seed=11)
    body = {
        "dataframe_split": {"columns": list(schema.names), "data": [list(r.values()) for r in rows]}
    }
    status, _, answer = _post(workers.port, "/invocations", json.dumps(body).encode())
    assert status == 200, answer[:300]
    served = np.asarray(json.loads(answer)["predictions"])
    model = load_model_bytes(
        (pipeline_repo / "models/model.skops").read_bytes(), params.trusted_types
    )
    expected = SklearnPredictor(model, schema).predict(schema.columns_from_records(rows))
    assert len(served) == 100_000
    probabilities = expected.probabilities
    assert probabilities is not None
    clear = np.abs(probabilities[:, 1] - 0.5) > 1e-3  # ONNX may flip exact ties only
    assert np.array_equal(served[clear], expected.labels[clear])


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` within BOUND seconds. Whatever it still sends first
    (the rest of an answer already started: its body may arrive after the headers) is read."""
    deadline = time.monotonic() + BOUND
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=BOUND)


def test_slow_and_idle_clients_are_closed_while_others_are_served(workers: ServerProcess) -> None:
    port = workers.port
    before = {
        reason: sum(_metric(port, rf'modelci_connections_closed_total\{{reason="{reason}"\}}'))
        for reason in ("header_timeout", "body_timeout", "idle")
    }
    slow_header = _connect(port)
    slow_header.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
    slow_body = _connect(port)
    slow_body.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"gen'
    )
    idle = _connect(port)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200" in idle.recv(1024).split(b"\r\n", 1)[0]
    silent = _connect(port)
    status, _, _ = _post(port, "/predict", json.dumps(ROW).encode())  # others are served
    assert status == 200
    clients = {"slow header": slow_header, "slow body": slow_body, "idle": idle, "silent": silent}
    for name, client in clients.items():
        assert _closed_by_server(client), f"the {name} client was not closed"
        client.close()
    after = {
        reason: sum(_metric(port, rf'modelci_connections_closed_total\{{reason="{reason}"\}}'))
        for reason in before
    }
    assert after["header_timeout"] >= before["header_timeout"] + 2  # dripping and silent
    assert after["body_timeout"] >= before["body_timeout"] + 1
    assert after["idle"] >= before["idle"] + 1


def test_a_drain_under_keep_alive_load_fails_no_request(pipeline_repo: Path) -> None:
    server = start_serve(
        pipeline_repo, "--model", "models/model.skops", "--workers", "2", "--drain-seconds", "3"
    )
    body = json.dumps(ROW).encode()
    results: list[str] = []
    started = threading.Barrier(9)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        started.wait()
        try:
            for _ in range(10_000):
                connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    results.append(f"status {response.status}")
                    return
                if response.getheader("connection", "").lower() == "close":
                    results.append("close")  # a real client now goes to another replica
                    return
            results.append("never told to close")
        except (OSError, http.client.HTTPException) as error:
            results.append(f"failed: {error!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        started.wait()
        time.sleep(0.5)  # every client is in its keep-alive loop
        server.signal(signal.SIGTERM)
        for thread in threads:
            thread.join(BOUND)
        assert results == ["close"] * 8
        assert server.process.wait(BOUND) == 0
    finally:
        server.cleanup()


def _children(pid: int) -> set[int]:
    return set(map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))


@pytest.mark.slow
def test_a_killed_worker_is_replaced_while_the_other_serves(pipeline_repo: Path) -> None:
    """SIGKILL one of two workers under load: the other keeps serving (and /ready stays 200),
    the parent forks a replacement, counts it, and every request sent after that succeeds."""
    server = start_serve(pipeline_repo, "--model", "models/model.skops", "--workers", "2")
    port = server.port
    body = json.dumps(ROW).encode()
    results: list[tuple[float, str]] = []  # (when sent, outcome)
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status, _, _ = _post(port, "/predict", body)
                results.append((sent, str(status)))
            except (OSError, http.client.HTTPException) as error:
                results.append((sent, repr(error)))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(3)]
    try:
        workers = _children(server.pid)
        assert len(workers) == 2
        for thread in threads:
            thread.start()
        assert _until(lambda: len(results) >= 30)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        assert _until(lambda: victim not in _children(server.pid))  # reaped by the parent
        # before the replacement (1 s back-off): the survivor answers, readiness included
        assert http_get(port, "/ready")[0] == 200
        assert _until(lambda: len(_children(server.pid) - {victim}) == 2)
        replaced_at = time.monotonic()
        assert _until(lambda: "started in place of a dead one" in server.output())
        assert _until(lambda: sum(_metric(port, "modelci_worker_restarts_total")) == 1)
        assert _until(lambda: sum(1 for sent, _ in results if sent > replaced_at + 0.5) >= 100)
    finally:
        stop.set()
        for thread in threads:
            thread.join(BOUND)
        code = server.stop()
        server.cleanup()
    after = [outcome for sent, outcome in results if sent > replaced_at]
    assert after == ["200"] * len(after), sorted(set(after))
    assert code == 0


def test_one_address_cannot_take_every_connection(pipeline_repo: Path) -> None:
    """Issue 19.11: 25 header-dripping sockets against --max-connections 20 gave everyone else
    503 for 10 s. With a per-address cap, one address holds at most its share; the others are
    refused at once with 503, and another address is still served."""
    server = start_serve(
        pipeline_repo, "--model", "models/model.skops", "--max-connections", "20",
        "--max-client-connections", "5",
        "--header-timeout", "30",
    )  # fmt: skip
    held: list[socket.socket] = []
    try:
        for _ in range(25):  # from 127.0.0.2: the test's own requests come from 127.0.0.1
            client = socket.create_connection(
                ("127.0.0.1", server.port), timeout=BOUND, source_address=("127.0.0.2", 0)
            )
            client.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # and never more
            held.append(client)
        refused = []
        for client in held[5:]:
            reply = client.recv(4096)
            refused.append(reply.split(b"\r\n", 1)[0])
        assert refused == [b"HTTP/1.1 503 Service Unavailable"] * 20
        for _ in range(10):
            status, _, _ = _post(server.port, "/predict", json.dumps(ROW).encode())
            assert status == 200
        closed = _metric(server.port, r'modelci_connections_closed_total\{reason="client_limit"\}')
        assert sum(closed) == 20
    finally:
        for client in held:
            client.close()
        assert server.stop() == 0, server.output()
        server.cleanup()


@pytest.mark.parametrize("count", ["1", "2"])
def test_a_served_port_cannot_be_shared_by_a_second_server(
    workers: ServerProcess, pipeline_repo: Path, count: str
) -> None:
    """Two workers share their port through SO_REUSEPORT; another server (one worker or many)
    trying the same port fails at start with one line, and the first keeps every request."""
    done = run(
        [MODELCI, "serve", "--model", "models/model.skops", "--port", str(workers.port)],
        pipeline_repo,
        check=False,
        timeout=120,
        MODELCI_WORKERS=count,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"modelci serve: error: http://127.0.0.1:{workers.port}: address already in use "
        "(Address already in use): another process or modelci server listens there; stop it "
        "or pick another --port"
    ], done.stderr
    # The first server still answers every request: nobody else took a share of its port.
    body = json.dumps([ROW]).encode()
    assert [_post(workers.port, "/predict", body)[0] for _ in range(20)] == [200] * 20


def test_a_port_held_by_another_process_is_refused(pipeline_repo: Path) -> None:
    """A plain listener (not modelci) on the port: a multi-worker server must not join it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that allows it
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        done = run(
            [MODELCI, "serve", "--model", "models/model.skops", "--port", str(port)],
            pipeline_repo,
            check=False,
            timeout=120,
            MODELCI_WORKERS="2",
        )
    assert done.returncode != 0
    assert "address already in use" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_admin_port_alone_serves_admin_and_metrics_for_every_worker(
    pipeline_repo: Path,
) -> None:
    """``--admin-port`` with two workers: /admin/* and /metrics answer there only (404 on the
    public port), /metrics there sums both workers, a reload there reloads both, /model on the
    public port tells no run, commit or URI, and nobody else can bind the admin port."""
    from tests.process_support import free_port

    admin = free_port()
    server = start_serve(
        pipeline_repo,
        "--model",
        "models/model.skops",
        "--workers",
        "2",
        "--admin-port",
        str(admin),
        MODELCI_ADMIN_TOKEN=TOKEN,
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        for path in ("/metrics", "/admin/model"):
            assert _request(server.port, "GET", path, {})[0] == 404, path
        assert _request(server.port, "POST", "/admin/reload", auth)[0] == 404
        described = json.loads(_request(server.port, "GET", "/model", {})[1])
        assert "git_commit" not in described
        assert "uri" not in described
        assert described["sha256"]
        assert _request(admin, "GET", "/predict", {})[0] == 404
        assert _request(admin, "POST", "/admin/reload", auth)[0] == 200
        assert _until(
            lambda: sum(_metric(admin, r'modelci_model_reloads_total\{outcome="ok"\}')) >= 2
        )
        assert len(_metric(admin, r'modelci_model_info\{pid="\d+"[^}]*\}')) == 2
        full = json.loads(_request(admin, "GET", "/admin/model", auth)[1])
        assert len(full["git_commit"]) == 40
        done = run(
            [MODELCI, "serve", "--model", "models/model.skops", "--port", str(free_port()),
             "--admin-port", str(admin)],
            pipeline_repo, check=False, timeout=120, MODELCI_WORKERS="1",
        )  # fmt: skip
        assert done.returncode != 0
        assert f"http://127.0.0.1:{admin}: address already in use" in done.stderr, done.stderr
        assert server.stop() == 0, server.output()
    finally:
        server.cleanup()


def _request(port: int, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()

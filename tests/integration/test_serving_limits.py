"""``modelci serve`` against hostile clients, as a real process on 127.0.0.1 (issue 19, High):

* ``/metrics`` keeps a constant number of series whatever methods, paths and header values
  clients send (every label value comes from a closed set);
* huge bodies of tiny rows (64 MB of one-character CSV lines, 63 MB of ``[[],[],...]``) are
  refused with a 413 while the server's peak RSS stays bounded and ``/health`` keeps answering.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import start_serve
from tests.process_support import ServerProcess, http_get

pytestmark = pytest.mark.integration

ROW = {
    "gender": "male",
    "age": 30.0,
    "class": "3rd",
    "embarked": "Cherbourg",
    "fare": 7.17,
    "sibsp": 0,
    "parch": 0,
}
# The bodies, over the default row limit by orders of magnitude; the server is given a
# body limit above them so that it is the row limit (and the parser) that must stop them.
CSV_BODY_BYTES = 64_000_000
JSON_BODY_BYTES = 63_000_000
BODY_LIMIT = 64 * 1024 * 1024
RSS_BOUND_MB = 300  # peak RSS above idle while a huge body is refused
HEALTH_BOUND_S = 1.0  # slowest /health answer while it is refused
BOUND = 120.0  # seconds: a bound on waits, never an expected duration


@pytest.fixture(scope="module")
def server(pipeline_repo: Path) -> Iterator[ServerProcess]:
    process = start_serve(
        pipeline_repo, "--model", "models/model.skops", "--max-body-bytes", str(BODY_LIMIT)
    )
    yield process
    assert process.stop() == 0, process.output()
    process.cleanup()


def _request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=BOUND)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _series(port: int) -> set[str]:
    """The series (name and labels) /metrics exposes now."""
    status, text = http_get(port, "/metrics")
    assert status == 200
    return {
        line.rsplit(" ", 1)[0]
        for line in text.decode().splitlines()
        if line and not line.startswith("#")
    }


def _hostile_round(port: int, n: int) -> None:
    """One of each kind of request whose method, path or headers the client chooses freely."""
    token = f"X{n}" + "A" * 4000
    json_type = {"Content-Type": "application/json"}
    for path in ("/predict", "/metrics", f"/nope/{n}"):
        _request(port, token, path)
    _request(port, "PUT", "/predict")
    _request(port, "GET", f"/predict/{n}?q={n}")
    _request(port, "GET", f"/%2e%2e/{n}")
    _request(port, "POST", "/predict", b"{}", {"Content-Type": f"application/x-{n}"})
    row = json.dumps(ROW).encode()
    _request(port, "POST", "/predict", row, {**json_type, "X-Request-ID": f"r{n}"})
    _request(port, "POST", "/predict", json.dumps({**ROW, f"f{n}": 1}).encode(), json_type)
    _request(port, "POST", "/predict", json.dumps({**ROW, "class": f"c{n}"}).encode(), json_type)
    _request(port, "POST", "/predict", f"[{n}".encode(), json_type)
    _request(port, "POST", "/admin/reload", b"", {"Authorization": f"Bearer {n}"})
    _request(port, "GET", "/health", headers={"User-Agent": f"ua{n}", "Accept": f"x/{n}"})


def test_metrics_series_stay_constant_under_hostile_methods_paths_and_headers(
    server: ServerProcess,
) -> None:
    port = server.port
    _hostile_round(port, 0)  # every kind once: the series they may legitimately add exist now
    _series(port)  # and the scrape's own
    before = _series(port)
    for n in range(1, 60):
        _hostile_round(port, n)
    after = _series(port)
    new = sorted(series[:150] for series in after - before)
    assert not new, f"{len(new)} new series, e.g. {new[:3]}"
    assert all(len(series) < 300 for series in after), max(after, key=len)[:300]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


class _HealthPoller(threading.Thread):
    """Polls /health until stopped and records the slowest answer (a failure counts as BOUND)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.slowest = 0.0
        self.polls = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.perf_counter()
            try:
                status, _ = http_get(self.port, "/health", timeout=BOUND)
                took = time.perf_counter() - started if status == 200 else BOUND
            except OSError:
                took = BOUND
            self.slowest = max(self.slowest, took)
            self.polls += 1
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(BOUND)


def _refused_within_bounds(server: ServerProcess, body: bytes, path: str, media: str) -> str:
    """Send ``body``; assert a 413 with bounded peak RSS and /health latency; return its message."""
    pid, port = server.pid, server.port
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    idle = _rss_mb(pid)
    poller = _HealthPoller(port)
    poller.start()
    try:
        status, reply = _request(port, "POST", path, body, {"Content-Type": media})
    finally:
        poller.stop()
    peak = _peak_rss_mb(pid) - idle
    print(f"{media} {len(body)} bytes: {status}, peak RSS +{peak:.0f} MB, "
          f"slowest /health {poller.slowest:.3f} s over {poller.polls} polls")  # fmt: skip
    assert status == 413, reply[:300]
    assert peak < RSS_BOUND_MB, f"peak RSS {peak:.0f} MB above idle"
    assert poller.polls > 0
    assert poller.slowest < HEALTH_BOUND_S, f"/health took {poller.slowest:.2f} s"
    assert http_get(port, "/health")[0] == 200
    return str(json.loads(reply)["message"])


@pytest.mark.slow
def test_csv_body_of_tiny_lines_is_refused_with_bounded_memory_and_latency(
    server: ServerProcess,
) -> None:
    body = b"gender\n" + b"a\n" * ((CSV_BODY_BYTES - 7) // 2)
    message = _refused_within_bounds(server, body, "/invocations", "text/csv")
    assert "at least 100001 > the limit of 100000" in message, message


@pytest.mark.slow
def test_json_body_of_empty_arrays_is_refused_with_bounded_memory_and_latency(
    server: ServerProcess,
) -> None:
    body = b"[" + b"[]," * ((JSON_BODY_BYTES - 4) // 3) + b"[]]"
    message = _refused_within_bounds(server, body, "/predict", "application/json")
    assert "100000" in message, message


@pytest.mark.slow
def test_dataframe_split_of_empty_rows_is_refused_with_bounded_memory(
    server: ServerProcess,
) -> None:
    data = b"[" + b"[]," * ((JSON_BODY_BYTES - 100) // 3) + b"[]]"
    body = b'{"dataframe_split":{"columns":[],"data":' + data + b"}}"
    message = _refused_within_bounds(server, body, "/invocations", "application/json")
    assert "100000" in message, message


def test_rows_up_to_the_limit_are_still_scored(server: ServerProcess) -> None:
    for rows in (1, 100, 10_000):
        status, reply = _request(
            server.port, "POST", "/predict", json.dumps([ROW] * rows).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200, reply[:300]
        assert len(json.loads(reply)["predictions"]) == rows
        csv_body = ",".join(ROW) + "\n" + (",".join(map(str, ROW.values())) + "\n") * rows
        status, reply = _request(
            server.port, "POST", "/invocations", csv_body.encode(), {"Content-Type": "text/csv"}
        )
        assert status == 200, reply[:300]
        assert len(json.loads(reply)["predictions"]) == rows


def test_large_bodies_beyond_the_parse_slots_wait_or_get_503(pipeline_repo: Path) -> None:
    """With one parse slot and no wait, a second large body while the first is still arriving
    is answered 503 with Retry-After; once the first is done, the next one is served."""
    process = start_serve(
        pipeline_repo, "--model", "models/model.skops",
        MODELCI_LARGE_BODY_BYTES="65536", MODELCI_LARGE_BODY_SLOTS="1",
        MODELCI_LARGE_BODY_WAIT="0",
    )  # fmt: skip
    try:
        body = json.dumps([ROW] * 2000).encode()
        head = (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        with socket.create_connection(("127.0.0.1", process.port), timeout=BOUND) as first:
            first.sendall(head + body[:10])
            deadline = time.monotonic() + BOUND
            while time.monotonic() < deadline:  # until the first holds the slot
                if b"modelci_large_bodies_active 1.0" in http_get(process.port, "/metrics")[1]:
                    break
                time.sleep(0.05)
            connection = http.client.HTTPConnection("127.0.0.1", process.port, timeout=BOUND)
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 503, response.read()[:300]
            assert response.getheader("retry-after") == "1"
            assert b"parse" in response.read()
            connection.close()
            first.sendall(body[10:])
            reply = b""
            while not reply.rstrip().endswith(b"}"):
                chunk = first.recv(65536)
                if not chunk:
                    break
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        status, reply = _request(
            process.port, "POST", "/predict", body, {"Content-Type": "application/json"}
        )
        assert status == 200, reply[:300]
    finally:
        process.cleanup()

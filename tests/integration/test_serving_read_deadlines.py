"""The read deadlines of ``modelci serve``'s HTTP protocol (serving/connections.py) count only
the time the server is reading: a request whose body waits unread (queued for a large-body parse
slot behind other large bodies) is not closed as a slow client, while a client that stops
sending is still closed once the server reads again.

uvicorn runs in a thread of the test on 127.0.0.1 with the timed protocol and an app that holds
a body unread for a while, as a request queued for a slot does; the test stops it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from modelci.serving.connections import ReadTimeouts, timed_protocol

pytestmark = pytest.mark.integration

BODY_TIMEOUT = 0.5
HOLD = 4 * BODY_TIMEOUT  # seconds the app leaves a body unread before reading it
BODY = b"x" * (2 * 1024 * 1024)  # far over what uvicorn buffers before it stops reading
BOUND = 30.0  # seconds: a bound on waits, never an expected duration


async def _holding_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    """Waits HOLD seconds, then reads the whole body and answers with its length."""
    if scope["type"] != "http":
        return
    await asyncio.sleep(HOLD)
    size = 0
    while True:
        message = await receive()  # type: ignore[operator]
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    answer = str(size).encode()
    await send(  # type: ignore[operator]
        {"type": "http.response.start", "status": 200,
         "headers": [(b"content-length", str(len(answer)).encode())]}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": answer})  # type: ignore[operator]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, list[str]]]:
    """(port, the reasons of the connections the server closed)."""
    import uvicorn

    closed: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        _holding_app,
        http=timed_protocol(ReadTimeouts(BOUND, BODY_TIMEOUT), closed.append),
        lifespan="off",
        log_config=None,
        # no log_level: uvicorn would set the process-wide uvicorn.* loggers' levels, and later
        # tests of this process (tests/unit/test_logs.py) read uvicorn.access at INFO
        log_level=None,
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + BOUND
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running.started, "uvicorn did not start"
    yield sock.getsockname()[1], closed
    running.should_exit = True
    thread.join(BOUND)
    sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def _head(size: int) -> bytes:
    return b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes or BOUND passes; b"" when it closes first."""
    sock.settimeout(BOUND)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
            if received.endswith(b"\r\n\r\n" + str(len(BODY)).encode()):
                break
    except ConnectionResetError:
        pass
    return received


def test_a_body_left_unread_by_the_server_is_not_a_slow_client(
    server: tuple[int, list[str]],
) -> None:
    port, closed = server
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        sender = threading.Thread(target=sock.sendall, args=(_head(len(BODY)) + BODY,))
        sender.start()  # blocks while the server does not read: the kernel buffers fill
        answer = _answer(sock)
        sender.join(BOUND)
    assert answer.startswith(b"HTTP/1.1 200"), (answer[:200], closed)
    assert answer.endswith(str(len(BODY)).encode())
    assert "body_timeout" not in closed


def test_a_client_that_stops_sending_is_closed_once_the_server_reads(
    server: tuple[int, list[str]],
) -> None:
    port, closed = server
    before = closed.count("body_timeout")
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        sock.sendall(_head(len(BODY) + 1) + BODY)  # one byte short, never sent
        started = time.monotonic()
        answer = _answer(sock)
        waited = time.monotonic() - started
    assert answer == b""
    assert closed.count("body_timeout") == before + 1
    assert waited >= HOLD  # not before the server read what it was sent

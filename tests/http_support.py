"""A loopback HTTP server for client tests: each path answers as a table says, and every request
is recorded (method, path, Authorization header)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

# How often a test server's loop looks for ``shutdown()``. socketserver's default, 0.5 s, was the
# time every test's ``server.shutdown()`` waited: about 30 s of `make check`'s wall time, idle.
POLL_INTERVAL = 0.02


def serve_in_thread(server: socketserver.BaseServer) -> threading.Thread:
    """A daemon thread, not yet started, serving ``server`` until ``server.shutdown()``, which then
    returns within :data:`POLL_INTERVAL`."""
    return threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    )


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class Loopback:
    """``with Loopback(routes) as server:`` serves ``routes`` (a path, without query, to an
    Answer, or to a function of the server giving one) on 127.0.0.1 until the block ends."""

    routes: dict[str, Answer | Callable[[Loopback], Answer]]
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = self.path.split("?")[0]
                owner.seen.append(Seen(self.command, path, self.headers.get("Authorization")))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                route = owner.routes.get(path, Answer(404, b"not found"))
                answer = route(owner) if callable(route) else route
                self.send_response(answer.status)
                for key, value in answer.headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = serve_in_thread(self._server)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def redirect(to: Callable[[Loopback], str], status: int = 302) -> Callable[[Loopback], Answer]:
    """A route answering ``status`` with ``Location: to(server)``."""
    return lambda server: Answer(status, b"", (("Location", to(server)),))

"""``fetch-window`` over HTTP(S) against servers on 127.0.0.1 that try to steer it: a redirect to
another local service, an https-to-http downgrade, a body over the cap, a body dripped slower than
the deadline. Every server is stopped by the test; every server loop is bounded."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelci.drift import fetch
from modelci.drift.github_commands import fetch_window
from modelci.errors import DataError
from tests.http_support import serve_in_thread

pytestmark = pytest.mark.unit

BODY = b"a,b\n1,2\n"


class Handler(BaseHTTPRequestHandler):
    """Routes of the test server; ``server.hits`` records every path asked for."""

    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)


def _send(handler: BaseHTTPRequestHandler, body: bytes, length: int | None = None) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def _redirect(location: str) -> Any:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def _drip(handler: BaseHTTPRequestHandler) -> None:
    """One byte every 50 ms, 200 at most (10 s), until the client goes away."""
    handler.send_response(200)
    handler.send_header("Content-Length", "200")
    handler.end_headers()
    for _ in range(200):
        try:
            handler.wfile.write(b"x")
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.05)


def _endless(handler: BaseHTTPRequestHandler) -> None:
    """A body with no Content-Length, 64 KiB chunks, 64 of them at most (4 MiB)."""
    handler.send_response(200)
    handler.end_headers()
    for _ in range(64):
        try:
            handler.wfile.write(b"y" * 65536)
        except OSError:
            return


class Server:
    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.hits = []  # type: ignore[attr-defined]
        self.httpd.routes = {}  # type: ignore[attr-defined]
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if context else "http"
        self.thread = serve_in_thread(self.httpd)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits  # type: ignore[attr-defined, no-any-return]

    def route(self, path: str, handler: Any) -> None:
        self.httpd.routes[path] = handler  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[Server], context: ssl.SSLContext | None = None) -> Server:
    server = Server(context)
    server.thread.start()
    servers.append(server)
    return server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts for a self-signed certificate of 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not on PATH: the https tests need a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject, *files],
        check=True,
        capture_output=True,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def test_a_same_origin_redirect_is_followed_and_streamed_to_disk(
    servers: list[Server], tmp_path: Path
) -> None:
    server = start(servers)
    server.route("/w/window.csv", lambda h: _send(h, BODY))
    server.route("/latest.csv", _redirect("/w/window.csv"))
    out = fetch_window(f"{server.url}/latest.csv", tmp_path)
    assert out.read_bytes() == BODY
    assert server.hits == ["/latest.csv", "/w/window.csv"]


def test_a_redirect_to_another_local_service_is_refused(
    servers: list[Server], tmp_path: Path
) -> None:
    metadata = start(servers)
    metadata.route("/iam/security-credentials/role", lambda h: _send(h, b"secret"))
    server = start(servers)
    server.route("/window.csv", _redirect(f"{metadata.url}/iam/security-credentials/role"))
    with pytest.raises(DataError, match="redirect to another origin refused"):
        fetch_window(f"{server.url}/window.csv", tmp_path)
    assert metadata.hits == []
    assert list(tmp_path.iterdir()) == []


def test_an_https_to_http_downgrade_is_refused(
    servers: list[Server], tls: tuple[ssl.SSLContext, ssl.SSLContext], tmp_path: Path
) -> None:
    plain = start(servers)
    plain.route("/window.csv", lambda h: _send(h, BODY))
    secure = start(servers, tls[0])
    secure.route("/ok.csv", lambda h: _send(h, BODY))
    port = secure.httpd.server_address[1]
    secure.route("/window.csv", _redirect(f"http://127.0.0.1:{port}/ok.csv"))
    with pytest.raises(DataError, match="redirect to another origin refused: http://"):
        fetch.download(f"{secure.url}/window.csv", tmp_path / "w", 1000, 10, tls[1])
    assert plain.hits == []
    # the same server over https is fine
    assert fetch.download(f"{secure.url}/ok.csv", tmp_path / "w", 1000, 10, tls[1]) == len(BODY)


@pytest.mark.parametrize("route", ["/declared.csv", "/endless.csv"])
def test_a_body_over_the_cap_is_refused_and_no_file_is_left(
    servers: list[Server], tmp_path: Path, route: str
) -> None:
    server = start(servers)
    server.route("/declared.csv", lambda h: _send(h, b"z" * 100, length=5_000_000))
    server.route("/endless.csv", _endless)
    with pytest.raises(DataError, match="larger than 1000000 bytes"):
        fetch_window(f"{server.url}{route}", tmp_path / "out", max_bytes=1_000_000)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_slow_drip_is_stopped_by_the_total_deadline(
    servers: list[Server], tmp_path: Path
) -> None:
    server = start(servers)
    server.route("/drip.csv", _drip)
    began = time.monotonic()
    with pytest.raises(DataError, match="not done within 1 s"):
        fetch_window(f"{server.url}/drip.csv", tmp_path, deadline=1.0)
    assert time.monotonic() - began < 3  # each byte came well within any per-read timeout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest/meta-data/", "private or reserved address"),
        ("https://10.1.2.3/window.csv", "private or reserved address"),
        ("https://[fe80::1]/window.csv", "private or reserved address"),
        ("http://192.0.2.1/window.csv", "plain http only to a loopback address"),
    ],
)
def test_private_link_local_and_plain_http_targets_are_refused_before_connecting(
    url: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_connection(*args: Any, **kwargs: Any) -> socket.socket:
        raise AssertionError("connected")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    with pytest.raises(DataError, match=reason):
        fetch_window(url, tmp_path)


def test_every_address_of_a_host_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name resolving to a public and a link-local address is refused (no round robin luck)."""
    answers = [("93.184.215.14", 443), ("169.254.169.254", 443)]
    infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", answer) for answer in answers]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: infos)
    with pytest.raises(fetch._RefusedError, match=r"169\.254\.169\.254"):
        fetch.vetted_address("windows.example", 443, "https")

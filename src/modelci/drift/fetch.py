"""Download a production window over HTTP(S) without letting the server steer the request.

The URL comes from the workflow's author, but the server answering it (or anyone who can change
what it answers) controls redirects, the body's size and its pace. So:

- https only; plain http only to a loopback address (a server on the runner itself);
- the host is resolved once and every address checked: private, link-local (cloud metadata at
  169.254.169.254), reserved, multicast and unspecified addresses are refused, and the connection
  goes to the address that was checked (no second lookup a DNS answer could change);
- redirects are followed only on the same origin (scheme, host, port), at most ``MAX_REDIRECTS``;
- one deadline for the whole download (connect, headers, every redirect and the body), enforced
  by a watchdog that shuts the socket, so a server dripping a byte at a time cannot outlast it;
- the body is streamed to the caller's file and refused past ``max_bytes`` (a ``Content-Length``
  over the cap is refused before any of it is read).

Imported only by ``fetch-window``: http.client and ssl cost ``modelci --help`` several ms.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path
from typing import BinaryIO

from modelci.errors import DataError

MAX_REDIRECTS = 5
CHUNK = 1 << 20
REDIRECTS = (301, 302, 303, 307, 308)


class _RefusedError(Exception):
    """A reason the download stops; ``download`` turns it into a one-line ``DataError``."""


def _origin(url: urllib.parse.SplitResult) -> tuple[str, str, int]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, (url.hostname or "").lower(), port


def vetted_address(host: str, port: int, scheme: str) -> str:
    """The address to connect to for ``host``: every address it resolves to must be public, or
    loopback; plain http needs every address to be loopback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise _RefusedError(f"cannot resolve {host}: {error}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if address.is_loopback:
            continue
        if scheme == "http":
            raise _RefusedError(f"plain http only to a loopback address; {host} is {address}")
        if (
            address.is_private
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise _RefusedError(f"{host} resolves to {address}, a private or reserved address")
    if not addresses:
        raise _RefusedError(f"cannot resolve {host}: no address")
    return str(addresses[0])


class _Watchdog:
    """Shuts the current connection's socket when the deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.fired = False
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` at the deadline (the response keeps reading it after http.client lets
        go of the connection)."""
        with self._lock:
            self._sock = sock

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            self.fired = True
            raise _RefusedError(f"not done within {self.seconds:g} s")
        return left

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            if self._sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    self._sock.shutdown(socket.SHUT_RDWR)


def _connect(
    url: urllib.parse.SplitResult, watchdog: _Watchdog, context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    scheme, host, port = _origin(url)
    address = vetted_address(host, port, scheme)
    connection: http.client.HTTPConnection
    if scheme == "https":
        connection = http.client.HTTPSConnection(
            host, port, timeout=watchdog.remaining(), context=context
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=watchdog.remaining())
    # Connect to the vetted address; TLS still verifies the certificate against ``host``.
    connection._create_connection = (  # type: ignore[attr-defined]
        lambda _where, timeout, source: socket.create_connection((address, port), timeout, source)
    )
    connection.connect()
    watchdog.watch(connection.sock)
    return connection


def _stream(response: http.client.HTTPResponse, handle: BinaryIO, max_bytes: int) -> int:
    length = response.getheader("Content-Length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise _RefusedError(f"Content-Length {length} is larger than {max_bytes} bytes")
    total = 0
    while chunk := response.read1(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise _RefusedError(f"larger than {max_bytes} bytes")
        handle.write(chunk)
    if response.length:  # what Content-Length promised and did not come
        raise _RefusedError(f"body ended {response.length} bytes short of its Content-Length")
    return total


def download(
    source: str,
    target: Path,
    max_bytes: int,
    deadline: float,
    context: ssl.SSLContext | None = None,
) -> int:
    """Stream the body at ``source`` into ``target``; the number of bytes written.

    Raises ``DataError`` naming ``source`` and the reason; ``target`` may then hold part of the
    body (the caller writes to a temporary file it removes, ``fileio.write_atomic``).
    ``context`` is for tests (a certificate authority of their own); default: the system's.
    """
    start = urllib.parse.urlsplit(source)
    if start.scheme not in ("https", "http") or not start.hostname:
        raise DataError(f"{source}: expected an https:// URL")
    url = start
    watchdog = _Watchdog(deadline)
    try:
        with watchdog, target.open("wb") as handle:
            for _ in range(MAX_REDIRECTS + 1):
                connection = _connect(url, watchdog, context)
                try:
                    path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
                    connection.request("GET", path, headers={"Accept-Encoding": "identity"})
                    response = connection.getresponse()
                    if response.status in REDIRECTS:
                        location = response.getheader("Location", "")
                        nxt = urllib.parse.urlsplit(urllib.parse.urljoin(url.geturl(), location))
                        if _origin(nxt) != _origin(start):
                            raise _RefusedError(
                                f"redirect to another origin refused: {nxt.geturl()}"
                            )
                        url = nxt
                        continue
                    if response.status != 200:
                        raise _RefusedError(f"HTTP {response.status} {response.reason}")
                    written = _stream(response, handle, max_bytes)
                    watchdog.remaining()  # a socket the watchdog shut looks like an early end
                    return written
                finally:
                    connection.close()
            raise _RefusedError(f"more than {MAX_REDIRECTS} redirects")
    except _RefusedError as error:
        if watchdog.fired:
            raise DataError(
                f"{source}: cannot fetch the window: not done within {deadline:g} s"
            ) from None
        raise DataError(f"{source}: cannot fetch the window: {error}") from None
    except (OSError, http.client.HTTPException) as error:
        if watchdog.fired:
            raise DataError(
                f"{source}: cannot fetch the window: not done within {deadline:g} s"
            ) from None
        raise DataError(f"{source}: cannot fetch the window: {error}") from None

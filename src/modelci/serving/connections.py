"""HTTP/1.1 connections with read timeouts: uvicorn's h11 protocol, plus a deadline for the request
headers and one for the body, and a count of every connection closed for being slow or idle.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``); a client that
connects and sends nothing, drips its headers or drips its body holds a connection (and a file
descriptor) for as long as it likes. Here the header deadline starts when the connection opens or
when the first byte of the next request arrives, the body deadline when the headers are complete;
a client that misses one is disconnected. A deadline runs only while the server reads: when
uvicorn stops reading (a body is buffered that the app has not asked for yet, as when a large body
waits for a parse slot), the client cannot send and the clock stops until reading resumes.

``--max-connections`` bounds all connections together, so one client opening that many slow
connections left everyone else a 503. :class:`ClientSlots` also bounds the connections of each
client address: one beyond the cap is answered 503 at once and closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ReadTimeouts:
    header_seconds: float
    body_seconds: float


class ClientSlots:
    """Open connections per client address, at most ``limit`` each (0: no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, address: str | None) -> bool:
        """Count one more connection from ``address``; False (not counted) beyond the limit."""
        if not self.limit or address is None:
            return True
        count = self._open.get(address, 0)
        if count >= self.limit:
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str | None) -> None:
        if address is None or address not in self._open:
            return
        if self._open[address] <= 1:
            del self._open[address]  # the table holds only addresses with open connections
        else:
            self._open[address] -= 1


class _ReportedFlow(FlowControl):
    """uvicorn's flow control, calling ``reading(False)`` when the server stops reading the
    connection and ``reading(True)`` when it starts again."""

    def __init__(self, transport: asyncio.Transport, reading: Callable[[bool], None]) -> None:
        super().__init__(transport)
        self._reading = reading

    def pause_reading(self) -> None:
        if not self.read_paused:
            self._reading(False)
        super().pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self._reading(True)
        super().resume_reading()


def _busy_response(limit: int) -> bytes:
    body = (
        b'{"error_code":"TOO_MANY_CONNECTIONS","message":"more than %d open connections from '
        b'this address; close some or retry"}' % limit
    )
    head = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + body


def timed_protocol(
    timeouts: ReadTimeouts, closed: Callable[[str], None], slots: ClientSlots | None = None
) -> type[H11Protocol]:
    """An ``H11Protocol`` subclass enforcing ``timeouts`` and the per-address cap of ``slots``;
    ``closed(reason)`` is called for each connection the server closes (reason
    ``header_timeout``, ``body_timeout``, ``idle`` or ``client_limit``)."""
    caps = slots if slots is not None else ClientSlots(0)
    busy = _busy_response(caps.limit)

    class TimedH11Protocol(H11Protocol):
        _read_timer: asyncio.TimerHandle | None = None
        _read_phase: str | None = None
        _slot: str | None = None
        _read_left: float | None = None  # seconds left of the deadline while not reading

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.flow = _ReportedFlow(transport, self._reading)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else None
            if not caps.take(address):
                closed("client_limit")
                transport.write(busy)
                transport.close()
                return
            self._slot = address
            self._arm("header_timeout", timeouts.header_seconds)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow_request()

        def on_response_complete(self) -> None:
            self._disarm()  # idle from here: the keep-alive timeout's job
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            caps.release(self._slot)
            self._slot = None
            super().connection_lost(exc)

        def timeout_keep_alive_handler(self) -> None:
            if not self.transport.is_closing():
                closed("idle")
            super().timeout_keep_alive_handler()

        def drain(self, grace: float) -> None:
            """A drain started: if this connection is between requests, close it after
            ``grace`` seconds unless a request arrives first (answered with Connection: close).
            Closing at once would reset a client that is just sending its next request."""
            if self.cycle is None or self.cycle.response_complete:
                self._unset_keepalive_if_required()
                self.timeout_keep_alive_task = self.loop.call_later(
                    grace, self.timeout_keep_alive_handler
                )

        def _follow_request(self) -> None:
            state = self.conn.their_state
            if state is h11.IDLE:
                if self._read_phase is None:  # the first bytes of the next request
                    self._arm("header_timeout", timeouts.header_seconds)
            elif state is h11.SEND_BODY:
                if self._read_phase != "body_timeout":
                    self._arm("body_timeout", timeouts.body_seconds)
            else:
                self._disarm()

        def _arm(self, phase: str, seconds: float) -> None:
            self._disarm()
            self._read_phase = phase
            if self.flow.read_paused:
                self._read_left = seconds
            else:
                self._read_timer = self.loop.call_later(seconds, self._expired, phase)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
            self._read_timer = None
            self._read_phase = None
            self._read_left = None

        def _reading(self, reading: bool) -> None:
            """Stop the deadline's clock while the server does not read, restart it with the
            time that was left when it reads again."""
            if not reading and self._read_timer is not None:
                self._read_left = max(self._read_timer.when() - self.loop.time(), 0.0)
                self._read_timer.cancel()
                self._read_timer = None
            elif reading and self._read_left is not None and self._read_phase is not None:
                self._read_timer = self.loop.call_later(
                    self._read_left, self._expired, self._read_phase
                )
                self._read_left = None

        def _expired(self, phase: str) -> None:
            self._read_timer = None
            self._read_phase = None
            if self.transport.is_closing():
                return
            closed(phase)
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()

    return TimedH11Protocol

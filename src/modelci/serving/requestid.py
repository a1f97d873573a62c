"""Request and row ids.

``X-Request-ID`` is the client's when it is sane, else a fresh random one. Sane means 1 to
:data:`MAX_LENGTH` characters from a conservative set (letters, digits and ``-_.:``), so the id
can go into logs and headers without escaping; anything else is replaced, not echoed.

A client's id says nothing about uniqueness: a client can send ``order-42`` twice, or with a
batch, so labels joined on it could join one label to many rows. Every scored request therefore
also gets a server-made *prediction id* (:func:`prediction_id`, returned as ``X-Prediction-ID``),
and row ``i`` of it the *row id* ``<prediction id>-<i>``: unique, and what labels are keyed by.
:class:`RecentIds` remembers the last client ids a worker saw, so a repeat is flagged in the
prediction log.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict

MAX_LENGTH = 128
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)
# Client ids remembered per worker to flag repeats (about 200 bytes each: some 20 MB at most).
RECENT_IDS = 100_000


def client_request_id(given: bytes | None) -> str | None:
    """The client's ``X-Request-ID`` when it is sane, else None."""
    if given is not None and _SANE.fullmatch(given):
        return given.decode("ascii")
    return None


def request_id(given: bytes | None) -> str:
    """The id this request is answered with: the client's sane one, else a fresh one."""
    return client_request_id(given) or os.urandom(16).hex()


def prediction_id() -> str:
    """A fresh server-made id for one scored request (96 random bits)."""
    return os.urandom(12).hex()


def row_ids(prediction: str, rows: int) -> list[str]:
    """The row ids of a request's rows, in order."""
    return [f"{prediction}-{index}" for index in range(rows)]


class RecentIds:
    """The last ``capacity`` distinct ids seen, oldest forgotten first."""

    def __init__(self, capacity: int = RECENT_IDS) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, rid: str) -> bool:
        """Remember ``rid``; True when it was already remembered."""
        if rid in self._ids:
            self._ids.move_to_end(rid)
            return True
        self._ids[rid] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

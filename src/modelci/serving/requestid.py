"""Request ids: the client's ``X-Request-ID`` when it is sane, else a fresh random one.

Sane means 1 to :data:`MAX_LENGTH` characters from a conservative set (letters, digits and
``-_.:``), so the id can go into logs and headers without escaping; anything else is replaced,
not echoed.
"""

from __future__ import annotations

import os
import re

MAX_LENGTH = 128
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)


def request_id(given: bytes | None) -> str:
    """The id this request is answered and logged with."""
    if given is not None and _SANE.fullmatch(given):
        return given.decode("ascii")
    return os.urandom(16).hex()

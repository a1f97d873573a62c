"""Log records of long-running commands (``modelci serve``): plain text by default, JSON lines
on request.

Every module logs through ``logging.getLogger(__name__)``; the records of ``modelci.*`` (and of
uvicorn, whose access log is optional) reach one stderr handler that :func:`configure` installs.
Text lines read as before logging existed (``modelci serve: draining in-flight requests``); JSON
lines carry ``time``, ``level``, ``logger`` and ``message``, and an access record its request's
``client``, ``method``, ``path``, ``http_version`` and ``status`` as fields.

The CLI's one-line errors are not log records: they are its output (cli.py prints them).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, get_args

LogFormat = Literal["text", "json"]
FORMATS: tuple[str, ...] = get_args(LogFormat)
FORMAT_ENV = "MODELCI_LOG_FORMAT"
# The loggers whose records the handler writes: the package's own and the server's.
LOGGERS = ("modelci", "uvicorn")
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class TextFormatter(logging.Formatter):
    """``<prog>: <message>``, the exception's traceback below it when there is one."""

    def __init__(self, prog: str) -> None:
        super().__init__(f"{prog.replace('%', '%%')}: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; times in UTC."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            entry.update(zip(_ACCESS_FIELDS, args, strict=True))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record arrives (a redirect, a test's capture),
    as logging's last-resort handler does."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Set by StreamHandler.__init__; the stream is always the current stderr."""


def log_format(requested: str | None = None) -> LogFormat:
    """``requested``, else ``MODELCI_LOG_FORMAT``, else text; ValueError on another name."""
    name = requested or os.environ.get(FORMAT_ENV) or "text"
    if name not in FORMATS:
        raise ValueError(f"log format {name!r}: expected {' or '.join(FORMATS)} ({FORMAT_ENV})")
    return name  # type: ignore[return-value]


def configure(
    prog: str, fmt: str | None = None, level: int = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Send the records of :data:`LOGGERS` at ``level`` and above to ``stream`` (stderr) in
    ``fmt``; called again, it replaces its handler instead of adding one."""
    handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format(fmt) == "json" else TextFormatter(prog))
    handler.set_name("modelci")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "modelci"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    return handler

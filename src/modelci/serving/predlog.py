"""Prediction log: a sample of requests and predictions as JSON Lines, bounded in memory and disk.

The request path only draws a random number and, for a sampled request, puts one small tuple on a
bounded queue (dropped and counted when full, never blocking). A daemon thread writes JSON lines
to ``DIR/predictions.jsonl`` and rotates it at ``max_bytes`` into ``predictions.jsonl.1`` ...
``.N``, so the disk used stays under ``(backups + 1) * max_bytes``. :func:`read_log` reads it
back (oldest first) for a drift check.

One line per row: ``{"ts": ..., "model_version": ..., "model_sha256": ..., "runtime": ...,
"request_id": ..., "row_id": ..., "input": {column: value}, "prediction": ...,
"probabilities": [...]}``. ``request_id`` is the one sent back in ``X-Request-ID`` (the client's
own when it sent one, so not unique); ``row_id`` is server-made and unique (see
``modelci.serving.requestid``): labels are joined on it. ``"duplicate_request_id": true`` marks
the rows of a request whose client id the worker had seen recently.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelci.layout import PREDICTION_LOG, prediction_log_files

_STOP = object()
_SEP = (",", ":")


class PredictionLog:
    def __init__(
        self,
        directory: Path,
        sample_rate: float = 0.1,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 3,
        queue_size: int = 1000,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("sample_rate must be between 0 and 1")
        self.directory = directory
        self.path = directory / PREDICTION_LOG
        self.sample_rate = sample_rate
        self.max_bytes = max_bytes
        self.backups = backups
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._random = random.Random()  # noqa: S311 - sampling, not security
        directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        return self.sample_rate >= 1.0 or self._random.random() < self.sample_rate

    def submit(
        self,
        model: dict[str, Any],
        batch: Mapping[str, np.ndarray],
        prediction: Any,
        rid: str,
        pid: str,
        duplicate: bool = False,
    ) -> bool:
        """Queue one request's rows (already validated), outputs and ids (request id,
        prediction id, whether the client's id is a recent repeat); False if dropped."""
        try:
            self._queue.put_nowait((time.time(), model, batch, prediction, (rid, pid, duplicate)))
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued and stop the writer thread."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _lines(
        self,
        item: tuple[float, dict[str, Any], Mapping[str, np.ndarray], Any, tuple[str, str, bool]],
    ) -> str:
        """The batch's JSON lines, built column by column: each column (inputs, labels,
        probabilities) is encoded by one ``json.dumps`` call and split into its rows' texts, and
        one format string per batch joins them, byte for byte the lines a ``json.dumps`` of each
        row's record gives (a per-row dict and ``json.dumps`` took about 1.6 s per 10,000 rows,
        a thread holding the GIL beside the request path)."""
        stamp, model, batch, prediction, (rid, pid, duplicate) = item
        rows = len(prediction.labels)
        if rows == 0:
            return ""
        head = json.dumps({"ts": round(stamp, 6), **model, "request_id": rid}, separators=_SEP)
        parts = [_braced(head[:-1]), ',"row_id":', _braced(json.dumps(f"{pid}-")[:-1]), '{}"']
        fields: list[list[str]] = [[str(index) for index in range(rows)]]
        for position, (name, values) in enumerate(batch.items()):
            parts.append(',"input":{{' if position == 0 else ",")
            parts.append(_braced(json.dumps(name)) + ":{}")
            fields.append(_texts(_plain(values)))
        parts.append("}}" if batch else ',"input":{{}}')
        parts.append(',"prediction":{}')
        fields.append(_texts(prediction.labels.tolist()))
        if duplicate:
            parts.append(',"duplicate_request_id":true')
        if prediction.probabilities is not None:
            parts.append(',"probabilities":[{}]')
            fields.append(_rows(prediction.probabilities.tolist()))
        template = "".join(parts) + "}}"
        return "\n".join(map(template.format, *fields)) + "\n"

    def _rotate(self) -> None:
        for index in range(self.backups, 0, -1):
            source = (
                self.path if index == 1 else self.path.with_name(f"{PREDICTION_LOG}.{index - 1}")
            )
            if source.exists():
                source.replace(self.path.with_name(f"{PREDICTION_LOG}.{index}"))
        if self.backups == 0:
            self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        handle = self.path.open("a", encoding="utf-8")
        size = self.path.stat().st_size
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                text = self._lines(item)
                if size and size + len(text) > self.max_bytes:
                    handle.close()
                    self._rotate()
                    handle = self.path.open("a", encoding="utf-8")
                    size = 0
                handle.write(text)
                size += len(text)
                self.written += text.count("\n")
                if self._queue.empty():
                    handle.flush()
        finally:
            handle.close()


def _plain(values: np.ndarray) -> list[Any]:
    """JSON values of a validated column: NaN (a null in a float column) back to None."""
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            plain = values.astype(object)
            plain[missing] = None
            return list(plain.tolist())
    return list(values.tolist())


def _texts(values: list[Any]) -> list[str]:
    """Each value's JSON text, as ``json.dumps`` writes it inside a record: one call for the
    list, split where it put its item separator, a newline (never inside a value: ``json.dumps``
    escapes a newline in a string)."""
    return json.dumps(values, separators=("\n", ":"))[1:-1].split("\n")


def _rows(values: list[list[float]]) -> list[str]:
    """Each row's numbers as JSON without its brackets (the template adds them)."""
    return json.dumps(values, separators=_SEP)[2:-2].split("],[")


def _braced(text: str) -> str:
    """``text`` as a literal part of a format string."""
    return text.replace("{", "{{").replace("}", "}}")


def read_log(directory: Path) -> Iterator[dict[str, Any]]:
    """Every logged row, oldest first; a torn last line (a crash mid-write) is skipped."""
    for path in prediction_log_files(directory):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record


def read_inputs(directory: Path) -> Any:
    """The logged inputs as a pandas DataFrame (one row per prediction), for a drift check."""
    import pandas as pd

    records = list(read_log(directory))
    frame = pd.DataFrame([record["input"] for record in records])
    frame["prediction"] = [record.get("prediction") for record in records]
    frame["model_version"] = [record.get("model_version") for record in records]
    return frame

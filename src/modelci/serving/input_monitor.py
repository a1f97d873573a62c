"""Live input and prediction gauges for ``/metrics``: what an operator alerts on between drift runs.

``observe(columns, prediction)`` is called once per validated batch and ``reject(error)`` once per
refused one. A batch is only *buffered* (a list append): the vectorised aggregation runs when
``flush_rows`` rows are pending, when the oldest pending batch is ``flush_seconds`` old, on the
app's periodic flush task, or on :meth:`flush`. One flush reduces every pending batch to one
vector of counts and sums (one NumPy pass per column), pushes it into a ring of such vectors and
sets the gauges from the ring's totals. Per request that is O(1) Python; per flush, O(columns).

The gauges describe the last ``window_rows`` rows (whole flushed chunks are evicted, so the
window holds between ``window_rows`` and ``window_rows + flush_rows`` rows):

* ``modelci_input_window_rows``: rows in the window;
* ``modelci_input_mean{feature}``: mean of the non-null values of a numeric (or bool) feature;
* ``modelci_input_null_ratio{feature}``: share of null values;
* ``modelci_input_category_share{feature,category}`` and ``modelci_input_unknown_ratio{feature}``:
  for a category feature with declared categories, the share of each declared category and of
  any other value among its non-null values;
* ``modelci_prediction_window_mean`` and ``modelci_prediction_window_share{label}``: mean score
  and, for classifiers, the share of each class among the predicted labels;
* ``modelci_input_violations_total{field,problem}``: schema problems of refused requests. The
  labels are bounded: ``field`` is a declared column, ``__other__`` (a field not in the schema),
  ``__row__`` (a row that is not an object) or ``__request__`` (the body itself); ``problem`` is
  one of :data:`PROBLEM_KINDS` or the request's lower-cased error code;
* ``modelci_model_version`` (numeric versions; the label is on ``modelci_model_info``),
  ``modelci_model_loaded_timestamp_seconds`` and ``modelci_model_ready`` (0 while draining).

Under ``--workers N`` (prometheus_client multiprocess mode) the ratio gauges use
``multiprocess_mode="liveall"``: every live worker exports its own window with a ``pid`` label.
Once full, every worker's window holds the same number of rows, so ``avg without (pid)`` of a
ratio is the ratio over the union of the windows (the recording rules in
``deploy/monitoring/rules.yml`` aggregate that way); ``modelci_input_window_rows`` is
``livesum`` (rows in all windows), the counter sums across workers as counters do.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelci.serving.schema import FieldSpec, InputError

# Kinds of schema problems, matched against the validator's messages (see problem_kind).
PROBLEM_KINDS = (
    "missing",
    "null",
    "out_of_range",
    "unknown_category",
    "unknown_field",
    "wrong_type",
    "not_an_object",
    "other",
)
_KIND_BY_TEXT = (
    ("required field is missing", "missing"),
    ("must not be null", "null"),
    ("below the minimum", "out_of_range"),
    ("above the maximum", "out_of_range"),
    ("64-bit range", "out_of_range"),
    ("not one of the declared categories", "unknown_category"),
    ("unknown field", "unknown_field"),
    ("expected an object", "not_an_object"),
    ("expected", "wrong_type"),
    ("must be a finite number", "wrong_type"),
)
_Mode = Literal["liveall", "livesum"]
OTHER_FIELD = "__other__"
ROW_FIELD = "__row__"
REQUEST_FIELD = "__request__"


def problem_kind(text: str) -> str:
    """The bounded kind of one validator message (``other`` when none matches)."""
    for fragment, kind in _KIND_BY_TEXT:
        if fragment in text:
            return kind
    return "other"


@dataclass(frozen=True)
class _Layout:
    """Where each statistic lives in a chunk's vector (slot 0 is the row count)."""

    numeric: tuple[tuple[str, int], ...]  # feature, slot of [sum, nulls]
    category: tuple[tuple[str, tuple[Any, ...], int], ...]  # feature, categories, slot of nulls
    size: int
    score_slot: int
    classes: tuple[Any, ...]
    label_slot: int

    @classmethod
    def build(cls, fields: Sequence[FieldSpec], classes: Sequence[Any] | None) -> _Layout:
        numeric: list[tuple[str, int]] = []
        category: list[tuple[str, tuple[Any, ...], int]] = []
        slot = 1
        for spec in fields:
            if spec.type == "category":
                categories = tuple(spec.categories or ())
                category.append((spec.name, categories, slot))
                slot += 1 + len(categories)
            else:
                numeric.append((spec.name, slot))
                slot += 2
        score_slot = slot
        label_slot = slot + 1
        kept = tuple(classes or ())
        return cls(tuple(numeric), tuple(category), label_slot + len(kept), score_slot, kept,
                   label_slot)  # fmt: skip


class InputMonitor:
    """Windowed summary gauges of validated inputs and predictions, and violation counters."""

    def __init__(
        self,
        fields: Sequence[FieldSpec],
        classes: Sequence[Any] | None,
        registry: CollectorRegistry,
        window_rows: int = 1000,
        flush_rows: int = 256,
        flush_seconds: float = 1.0,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        if window_rows < 1 or flush_rows < 1 or flush_seconds <= 0:
            raise ValueError("window_rows and flush_rows must be >= 1, flush_seconds > 0")
        self.window_rows = window_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._ready = ready
        self._lock = threading.Lock()
        self._pending: list[tuple[Mapping[str, Any], np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._pending_since = 0.0
        self._chunks: deque[np.ndarray] = deque()
        self._gauges(registry)
        self._reset(fields, classes)

    def _gauges(self, registry: CollectorRegistry) -> None:
        def gauge(
            name: str, text: str, labels: Sequence[str] = (), mode: _Mode = "liveall"
        ) -> Gauge:
            return Gauge(name, text, labels, registry=registry, multiprocess_mode=mode)

        self.rows_gauge = gauge(
            "modelci_input_window_rows", "Rows in the input window", mode="livesum"
        )
        self.mean = gauge(
            "modelci_input_mean", "Mean of the non-null values in the window", ("feature",)
        )
        self.null_ratio = gauge(
            "modelci_input_null_ratio", "Share of null values in the window", ("feature",)
        )
        self.unknown_ratio = gauge(
            "modelci_input_unknown_ratio",
            "Share of non-null values outside the declared categories, in the window",
            ("feature",),
        )
        self.share = gauge(
            "modelci_input_category_share",
            "Share of each declared category among the non-null values, in the window",
            ("feature", "category"),
        )
        self.score_mean = gauge(
            "modelci_prediction_window_mean", "Mean prediction score over the window"
        )
        self.label_share = gauge(
            "modelci_prediction_window_share",
            "Share of each predicted class over the window (classifiers)",
            ("label",),
        )
        self.violations = Counter(
            "modelci_input_violations",
            "Schema problems in refused requests, by field and kind",
            ("field", "problem"),
            registry=registry,
        )
        self.version = gauge(
            "modelci_model_version", "Version of the served model (numeric versions)"
        )
        self.loaded = gauge(
            "modelci_model_loaded_timestamp_seconds", "When the served model was loaded"
        )
        self.ready_gauge = gauge("modelci_model_ready", "1 when serving, 0 while draining")

    def _reset(self, fields: Sequence[FieldSpec], classes: Sequence[Any] | None) -> None:
        self._layout = _Layout.build(fields, classes)
        self._fields = frozenset(spec.name for spec in fields)
        self._totals = np.zeros(self._layout.size)
        self._chunks.clear()
        self._pending.clear()
        self._pending_rows = 0
        for gauge in (self.mean, self.null_ratio, self.unknown_ratio, self.share, self.label_share):
            gauge.clear()

    # -- hooks ------------------------------------------------------------------------------
    def model_loaded(
        self,
        fields: Sequence[FieldSpec],
        classes: Sequence[Any] | None,
        version: str | None,
        loaded_at: float,
    ) -> None:
        """A (re)loaded model: new schema or classes start a fresh window."""
        with self._lock:
            layout = _Layout.build(fields, classes)
            if layout != self._layout:
                self._reset(fields, classes)
            self._publish()
        number = float(version) if version is not None and version.isdigit() else math.nan
        self.version.set(number)
        self.loaded.set(loaded_at)
        self.ready_gauge.set(1)

    def observe(self, columns: Mapping[str, Any], scores: np.ndarray, labels: np.ndarray) -> None:
        """One validated batch: ``columns`` maps each feature to its values (a 1-D array or a
        sequence, None for null), ``scores``/``labels`` are the prediction's."""
        rows = len(scores)
        if rows == 0:
            return
        now = time.monotonic()
        with self._lock:
            if not self._pending:
                self._pending_since = now
            self._pending.append((columns, scores, labels))
            self._pending_rows += rows
            if (
                self._pending_rows >= self.flush_rows
                or now - self._pending_since >= self.flush_seconds
            ):
                self._flush_locked()

    def reject(self, error: InputError) -> None:
        """A refused request: count each problem it names (at most the validator's cap)."""
        if not error.problems:
            self.violations.labels(REQUEST_FIELD, error.code.lower()).inc()
            return
        for item in error.problems:
            name = item.get("field")
            if name is None:
                field = ROW_FIELD
            elif name in self._fields:
                field = name
            else:
                field = OTHER_FIELD
            self.violations.labels(field, problem_kind(str(item.get("problem", "")))).inc()

    def flush(self) -> None:
        """Aggregate the pending batches and publish the gauges now."""
        with self._lock:
            self._flush_locked()

    async def run_flusher(self) -> None:
        """Flush every ``flush_seconds`` (the app runs this as a background task, cancelled at
        shutdown), so an idle worker still publishes its last batches and its readiness."""
        while True:
            await asyncio.sleep(self.flush_seconds)
            self.flush()

    # -- aggregation ------------------------------------------------------------------------
    def _flush_locked(self) -> None:
        if self._pending:
            chunk = self._aggregate(self._pending, self._pending_rows)
            self._pending = []
            self._pending_rows = 0
            self._chunks.append(chunk)
            self._totals += chunk
            while (
                len(self._chunks) > 1 and self._totals[0] - self._chunks[0][0] >= self.window_rows
            ):
                self._totals -= self._chunks.popleft()
        self._publish()

    def _aggregate(
        self, batches: Sequence[tuple[Mapping[str, Any], np.ndarray, np.ndarray]], rows: int
    ) -> np.ndarray:
        layout = self._layout
        out = np.zeros(layout.size)
        out[0] = rows
        for name, slot in layout.numeric:
            values = _concat([batch[0][name] for batch in batches], "float64")
            nulls = np.isnan(values)
            out[slot] = float(np.sum(values, where=~nulls))
            out[slot + 1] = float(np.count_nonzero(nulls))
        for name, categories, slot in layout.category:
            values = _concat([batch[0][name] for batch in batches], "object")
            nulls = values == None  # noqa: E711 - NumPy's elementwise comparison
            out[slot] = float(np.count_nonzero(nulls))
            for offset, category in enumerate(categories, start=1):
                out[slot + offset] = float(np.count_nonzero(values == category))
        scores = _concat([batch[1] for batch in batches], "float64")
        out[layout.score_slot] = float(np.sum(scores))
        if layout.classes:
            labels = _concat([batch[2] for batch in batches], "object")
            for offset, label in enumerate(layout.classes):
                out[layout.label_slot + offset] = float(np.count_nonzero(labels == label))
        return out

    def _publish(self) -> None:
        layout, totals = self._layout, self._totals
        rows = totals[0]
        self.rows_gauge.set(rows)
        if self._ready is not None:
            self.ready_gauge.set(1 if self._ready() else 0)
        if rows == 0:
            return
        for name, slot in layout.numeric:
            present = rows - totals[slot + 1]
            self.mean.labels(name).set(totals[slot] / present if present else math.nan)
            self.null_ratio.labels(name).set(totals[slot + 1] / rows)
        for name, categories, slot in layout.category:
            self.null_ratio.labels(name).set(totals[slot] / rows)
            if not categories:
                continue
            present = rows - totals[slot]
            counts = totals[slot + 1 : slot + 1 + len(categories)]
            for category, count in zip(categories, counts, strict=True):
                self.share.labels(name, str(category)).set(count / present if present else 0.0)
            unknown = present - float(np.sum(counts))
            self.unknown_ratio.labels(name).set(unknown / present if present else 0.0)
        self.score_mean.set(totals[layout.score_slot] / rows)
        for offset, label in enumerate(layout.classes):
            self.label_share.labels(str(label)).set(totals[layout.label_slot + offset] / rows)


def _concat(parts: Sequence[Any], dtype: str) -> np.ndarray:
    """One 1-D array of ``dtype`` from the batches' columns (arrays or sequences; None -> NaN for
    floats). One C-level pass: the columnar request path hands arrays, the row path lists."""
    if all(isinstance(part, np.ndarray) for part in parts):
        joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if dtype == "float64" and joined.dtype == object:
            return np.array(joined, dtype="float64")
        return np.asarray(joined, dtype=dtype)
    flat: list[Any] = []
    for part in parts:
        flat.extend(part)
    return np.array(flat, dtype=dtype)

"""Live input and prediction gauges for ``/metrics``: what an operator alerts on between drift runs.

``observe(columns, prediction)`` is called once per validated batch and ``reject(error)`` once per
refused one. A batch is only *buffered*: each column's values are appended to that column's
pending list (``list.extend``, a C-level copy). The vectorised aggregation runs when
``flush_rows`` rows are pending, when the oldest pending batch is ``flush_seconds`` old, on the
app's periodic flush task, or on :meth:`flush`. One flush reduces the pending values to one
vector of counts and sums (one NumPy conversion per numeric column, a C-level ``Counter`` per
category column, then Python over the distinct values only), pushes it into a ring of such
vectors and sets the gauges from the ring's totals. Per batch and per flush that is O(columns)
Python, never a Python loop over rows.

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
Once full, every worker's window holds the same number of rows, so the mean over ``pid`` of a
ratio is the ratio over the union of the windows (the recording rules in
``deploy/monitoring/rules.yml`` average ``by (job, feature)``, over workers and replicas);
``modelci_input_window_rows`` is ``livesum`` (rows in all windows), the counter sums across
workers as counters do.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from modelci.config import Column
from modelci.serving.schema import InputError

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
_SCORES = "\0scores"  # keys of the pending scores and labels (no column has a NUL in its name)
_LABELS = "\0labels"
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
    def build(cls, fields: Sequence[Column], classes: Sequence[Any] | None) -> _Layout:
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
        fields: Sequence[Column],
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
        # The pending values, one flat list per feature, then the scores and the labels.
        self._pending: dict[str, list[Any]] = {}
        # Numeric arrays (the columnar request path, and the scores) are kept whole.
        self._arrays: dict[str, list[np.ndarray]] = {}
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

    def _reset(self, fields: Sequence[Column], classes: Sequence[Any] | None) -> None:
        self._layout = _Layout.build(fields, classes)
        self._fields = frozenset(spec.name for spec in fields)
        self._totals = np.zeros(self._layout.size)
        self._chunks.clear()
        self._names = tuple(spec.name for spec in fields)
        self._numeric = frozenset(name for name, _ in self._layout.numeric)
        self._pending = {name: [] for name in (*self._names, _SCORES)}
        self._arrays = {name: [] for name in (*self._numeric, _SCORES, _LABELS)}
        self._pending_rows = 0
        self._children = _Children.resolve(self, self._layout)

    # -- hooks ------------------------------------------------------------------------------
    def model_loaded(
        self,
        fields: Sequence[Column],
        classes: Sequence[Any] | None,
        version: str | None,
        loaded_at: float,
    ) -> None:
        """A (re)loaded model: new schema or classes start a fresh window."""
        with self._lock:
            layout = _Layout.build(fields, classes)
            if layout != self._layout:
                # drop the old layout's series (multiprocess mode keeps them in the workers'
                # files: prometheus_client warns)
                for gauge in (
                    self.mean, self.null_ratio, self.unknown_ratio, self.share, self.label_share
                ):  # fmt: skip
                    gauge.clear()
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
        pending, arrays = self._pending, self._arrays
        with self._lock:
            if not self._pending_rows:
                self._pending_since = now
            # C-level copies into flat lists: no Python loop over rows, and the flush then
            # converts one list per column instead of one small piece per batch.
            for name in self._names:
                values = columns[name]
                if not isinstance(values, np.ndarray):
                    pending[name].extend(values)
                elif name in self._numeric and values.dtype.kind in "biuf":
                    arrays[name].append(values)
                else:
                    pending[name].extend(values.tolist())
            arrays[_SCORES].append(scores)
            if self._layout.classes:
                arrays[_LABELS].append(labels)
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
        if self._pending_rows:
            chunk = self._aggregate(self._pending, self._arrays, self._pending_rows)
            self._pending = {name: [] for name in self._pending}
            self._arrays = {name: [] for name in self._arrays}
            self._pending_rows = 0
            self._chunks.append(chunk)
            self._totals += chunk
            while (
                len(self._chunks) > 1 and self._totals[0] - self._chunks[0][0] >= self.window_rows
            ):
                self._totals -= self._chunks.popleft()
        self._publish()

    def _aggregate(
        self, pending: Mapping[str, list[Any]], arrays: Mapping[str, list[np.ndarray]], rows: int
    ) -> np.ndarray:
        """One vector of counts and sums for the pending values: one NumPy conversion per
        numeric column, a C-level ``Counter`` per category column (None and strings do not
        sort together for ``np.unique``), ``np.unique`` for the labels, then Python over the
        distinct values only."""
        layout = self._layout
        out = np.zeros(layout.size)
        out[0] = rows
        for name, slot in layout.numeric:
            values = _numbers(pending[name], arrays[name])
            nulls = np.isnan(values)
            out[slot] = float(np.sum(values, where=~nulls))
            out[slot + 1] = float(np.count_nonzero(nulls))
        for name, categories, slot in layout.category:
            counts = Tally(pending[name])
            out[slot] = counts.get(None, 0)
            for offset, category in enumerate(categories, start=1):
                out[slot + offset] = counts.get(category, 0)
        out[layout.score_slot] = float(np.sum(_numbers(pending[_SCORES], arrays[_SCORES])))
        if layout.classes:
            distinct, per_label = np.unique(np.concatenate(arrays[_LABELS]), return_counts=True)
            labels = dict(zip(distinct.tolist(), per_label.tolist(), strict=True))
            for offset, label in enumerate(layout.classes):
                out[layout.label_slot + offset] = labels.get(label, 0)
        return out

    def _publish(self) -> None:
        layout, totals, children = self._layout, self._totals, self._children
        rows = totals[0]
        self.rows_gauge.set(rows)
        if self._ready is not None:
            self.ready_gauge.set(1 if self._ready() else 0)
        if rows == 0:
            return
        for (mean, nulls), (_, slot) in zip(children.numeric, layout.numeric, strict=True):
            present = rows - totals[slot + 1]
            mean.set(totals[slot] / present if present else math.nan)
            nulls.set(totals[slot + 1] / rows)
        for (nulls, unknown, shares), (_, categories, slot) in zip(
            children.category, layout.category, strict=True
        ):
            nulls.set(totals[slot] / rows)
            if not categories:
                continue
            present = rows - totals[slot]
            counts = totals[slot + 1 : slot + 1 + len(categories)]
            for share, count in zip(shares, counts, strict=True):
                share.set(count / present if present else 0.0)
            unknown.set((present - float(np.sum(counts))) / present if present else 0.0)
        self.score_mean.set(totals[layout.score_slot] / rows)
        for offset, share in enumerate(children.labels):
            share.set(totals[layout.label_slot + offset] / rows)


@dataclass(frozen=True)
class _Children:
    """The labelled gauge children of a layout, resolved once (``labels()`` is a dict lookup
    under a lock: too slow to repeat for every gauge on every flush)."""

    numeric: tuple[tuple[Any, Any], ...]  # mean, null ratio
    category: tuple[tuple[Any, Any, tuple[Any, ...]], ...]  # null ratio, unknown, shares
    labels: tuple[Any, ...]

    @classmethod
    def resolve(cls, monitor: InputMonitor, layout: _Layout) -> _Children:
        return cls(
            tuple(
                (monitor.mean.labels(name), monitor.null_ratio.labels(name))
                for name, _ in layout.numeric
            ),
            tuple(
                (
                    monitor.null_ratio.labels(name),
                    monitor.unknown_ratio.labels(name) if categories else None,
                    tuple(monitor.share.labels(name, str(c)) for c in categories),
                )
                for name, categories, _ in layout.category
            ),
            tuple(monitor.label_share.labels(str(label)) for label in layout.classes),
        )


def _numbers(flat: list[Any], arrays: list[np.ndarray]) -> np.ndarray:
    """One float64 array of a column's pending values (None -> NaN)."""
    parts = [np.asarray(array, dtype="float64") for array in arrays]
    if flat or not parts:
        parts.append(np.array(flat, dtype="float64"))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]

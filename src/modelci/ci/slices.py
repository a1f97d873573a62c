"""Per-slice diffs: each slice value's metrics at base and PR, the largest regressions first.

Slices are what ``evaluate`` writes to ``reports/slices.json`` (column -> value -> metrics, with
``rows``); a slice value with fewer than ``evaluate.min_slice_rows`` rows has ``rows`` only and is
shown as too small to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelci.ci.gate import json_number


@dataclass(frozen=True)
class SliceRow:
    """One (column, value, metric) of the slices; ``metric`` is None for a too-small slice."""

    column: str
    value: str
    metric: str | None
    base: float | None
    head: float | None
    base_rows: int | None
    head_rows: int | None
    higher_is_better: bool = True

    @property
    def delta(self) -> float | None:
        if self.base is None or self.head is None:
            return None
        return self.head - self.base

    @property
    def regression(self) -> float:
        delta = self.delta
        if delta is None:
            return -math.inf
        return -delta if self.higher_is_better else delta

    @property
    def too_small(self) -> bool:
        return self.metric is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "metric": self.metric,
            "base": json_number(self.base),
            "head": json_number(self.head),
            "delta": json_number(self.delta),
            "rows": [self.base_rows, self.head_rows],
            "too_small": self.too_small,
        }


def _entries(slices: Mapping[str, Any] | None) -> dict[tuple[str, str], Mapping[str, Any]]:
    result: dict[tuple[str, str], Mapping[str, Any]] = {}
    for column, values in (slices or {}).items():
        if not isinstance(values, Mapping):
            continue
        for value, entry in values.items():
            if isinstance(entry, Mapping):
                result[(str(column), str(value))] = entry
    return result


def _number(entry: Mapping[str, Any] | None, key: str) -> float | None:
    value = (entry or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _rows(entry: Mapping[str, Any] | None) -> int | None:
    value = _number(entry, "rows")
    return None if value is None else int(value)


def slice_rows(
    base: Mapping[str, Any] | None,
    head: Mapping[str, Any] | None,
    metrics: list[str],
    directions: Mapping[str, bool],
) -> list[SliceRow]:
    """Rows for ``metrics`` in every slice of either side: regressions first (largest first),
    then the rest, then the slices too small to judge."""
    old, new = _entries(base), _entries(head)
    rows: list[SliceRow] = []
    small: list[SliceRow] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        shown = [
            m for m in metrics if _number(after, m) is not None or _number(before, m) is not None
        ]
        if not shown:
            small.append(SliceRow(*key, None, None, None, _rows(before), _rows(after)))
            continue
        for metric in shown:
            rows.append(
                SliceRow(
                    *key,
                    metric,
                    _number(before, metric),
                    _number(after, metric),
                    _rows(before),
                    _rows(after),
                    directions.get(metric, True),
                )
            )
    rows.sort(key=lambda row: -row.regression)
    return rows + small

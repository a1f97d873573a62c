"""Per-slice diffs: each slice value's metrics at base and PR, the largest regressions first.

Slices are what ``evaluate`` writes to ``reports/slices.json`` (column -> value -> metrics, with
``rows``); a slice value with fewer than ``evaluate.min_slice_rows`` rows has ``rows`` only and is
shown as too small to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelci.judge.gate import json_number


@dataclass(frozen=True)
class SliceRow:
    """One slice value: its rows and, per metric, the base and PR values (none: too small)."""

    column: str
    value: str
    base_rows: int | None
    head_rows: int | None
    values: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    directions: dict[str, bool] = field(default_factory=dict)

    def delta(self, metric: str) -> float | None:
        base, head = self.values.get(metric, (None, None))
        return None if base is None or head is None else head - base

    @property
    def regression(self) -> float:
        """The largest regression over the metrics (-inf when none can be computed)."""
        worst = -math.inf
        for metric in self.values:
            delta = self.delta(metric)
            if delta is not None:
                worst = max(worst, -delta if self.directions.get(metric, True) else delta)
        return worst

    @property
    def too_small(self) -> bool:
        return not self.values

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "value": self.value,
            "rows": [self.base_rows, self.head_rows],
            "too_small": self.too_small,
            "metrics": {
                name: {
                    "base": json_number(base),
                    "head": json_number(head),
                    "delta": json_number(self.delta(name)),
                }
                for name, (base, head) in self.values.items()
            },
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
    """One row per slice value of either side: largest regression first, too-small ones last."""
    old, new = _entries(base), _entries(head)
    rows = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        values = {
            metric: (_number(before, metric), _number(after, metric))
            for metric in metrics
            if _number(before, metric) is not None or _number(after, metric) is not None
        }
        shown = {metric: directions.get(metric, True) for metric in values}
        rows.append(SliceRow(*key, _rows(before), _rows(after), values, shown))
    return sorted(rows, key=lambda row: (row.too_small, -row.regression))

"""What changed between two repository states: params, metrics, data. Pure functions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from modelci.ci.state import RepoState
from modelci.judge.gate import MetricVerdict, Verdict, json_number
from modelci.statefiles import flatten

Change = Literal["added", "removed", "changed", "unchanged"]
MetricChange = Literal["improved", "regressed", "unchanged", "new", "removed", "invalid"]


@dataclass(frozen=True)
class ParamChange:
    key: str
    base: Any
    head: Any
    change: Change

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricRow:
    name: str
    base: float | None
    head: float | None
    delta: float | None
    higher_is_better: bool
    change: MetricChange
    gate: MetricVerdict | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": json_number(self.base),
            "head": json_number(self.head),
            "delta": json_number(self.delta),
            "higher_is_better": self.higher_is_better,
            "change": self.change,
            "gate": self.gate.to_dict() if self.gate is not None else None,
        }


@dataclass(frozen=True)
class ValueChange:
    """A row count, a column type or a content hash that differs between base and head."""

    group: str  # the split, "column", or the dvc.lock stage
    name: str
    base: Any
    head: Any
    change: Change

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def diff_params(
    base: Mapping[str, Any] | None, head: Mapping[str, Any] | None, prefix: str = ""
) -> list[ParamChange]:
    """Flattened dotted keys whose value differs (lists compare as a whole), named prefix+key."""
    old = flatten(base or {})
    new = flatten(head or {})
    changes = []
    for key in sorted(set(old) | set(new)):
        name = prefix + key
        if key not in new:
            changes.append(ParamChange(name, old[key], None, "removed"))
        elif key not in old:
            changes.append(ParamChange(name, None, new[key], "added"))
        elif _canonical(old[key]) != _canonical(new[key]):
            changes.append(ParamChange(name, old[key], new[key], "changed"))
    return changes


def diff_param_files(base: RepoState, head: RepoState) -> list[ParamChange]:
    """The params file (``params.yaml``) as dotted keys, then every other params file dvc.yaml
    tracks on either side, as ``FILE:key``."""
    changes = diff_params(base.params, head.params)
    for file in sorted(set(base.param_files) | set(head.param_files)):
        changes += diff_params(
            base.param_files.get(file), head.param_files.get(file), prefix=f"{file}:"
        )
    return changes


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def metric_rows(
    base: Mapping[str, float] | None,
    head: Mapping[str, float] | None,
    verdict: Verdict | None,
    directions: Mapping[str, bool],
) -> list[MetricRow]:
    """Every metric of either side, with delta, direction and the gate's verdict when gated.

    Direction comes from the gate rule, else ``directions`` (known metric names), else higher.
    """
    base = base or {}
    head = head or {}
    gated = {metric.name: metric for metric in verdict.metrics} if verdict else {}
    rows = []
    for name in sorted(set(base) | set(head) | set(gated)):
        judged = gated.get(name)
        higher = judged.higher_is_better if judged else directions.get(name, True)
        old, new = base.get(name), head.get(name)
        delta = (
            new - old
            if _finite(old) and _finite(new) and old is not None and new is not None
            else None
        )
        change: MetricChange
        if new is None:
            change = "removed" if old is not None else "invalid"
        elif not math.isfinite(new):
            change = "invalid"
        elif old is None or not math.isfinite(old):
            change = "new"
        elif delta is None or abs(delta) < 1e-12:
            change = "unchanged"
        else:
            change = "improved" if (delta > 0) == higher else "regressed"
        rows.append(MetricRow(name, old, new, delta, higher, change, judged))
    return rows


def _rows(profile: Mapping[str, Any] | None) -> dict[str, Any]:
    rows = (profile or {}).get("rows")
    return dict(rows) if isinstance(rows, Mapping) else {}


def _columns(profile: Mapping[str, Any] | None) -> dict[str, Any]:
    columns = (profile or {}).get("columns")
    return dict(columns) if isinstance(columns, Mapping) else {}


def _compare(group: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ValueChange]:
    changes = []
    for name in sorted(set(old) | set(new), key=str):
        if name not in new:
            changes.append(ValueChange(group, str(name), old[name], None, "removed"))
        elif name not in old:
            changes.append(ValueChange(group, str(name), None, new[name], "added"))
        elif _canonical(old[name]) != _canonical(new[name]):
            changes.append(ValueChange(group, str(name), old[name], new[name], "changed"))
    return changes


def data_changes(base: RepoState, head: RepoState) -> dict[str, list[ValueChange]]:
    """Row counts per split, column types, and changed ``dvc.lock`` content hashes per stage."""
    rows = []
    old_rows, new_rows = _rows(base.profile), _rows(head.profile)
    for split in sorted(set(old_rows) | set(new_rows), key=str):
        old, new = old_rows.get(split), new_rows.get(split)
        change: Change = "changed" if _canonical(old) != _canonical(new) else "unchanged"
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        rows.append(ValueChange("rows", str(split), old, new, change))
    hashes = []
    old_hashes = base.lock.entry_digests() if base.lock else {}
    new_hashes = head.lock.entry_digests() if head.lock else {}
    for key in sorted(set(old_hashes) | set(new_hashes)):
        old_hash, new_hash = old_hashes.get(key), new_hashes.get(key)
        if key in old_hashes and key in new_hashes and old_hash == new_hash:
            continue
        hash_change: Change = "changed"
        if key not in old_hashes:
            hash_change = "added"
        elif key not in new_hashes:
            hash_change = "removed"
        hashes.append(ValueChange(key[0], key[1], old_hash, new_hash, hash_change))
    return {
        "rows": rows,
        "columns": _compare("column", _columns(base.profile), _columns(head.profile)),
        "hashes": hashes,
    }

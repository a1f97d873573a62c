"""The data diff of a pull request: how each column of the training split moved from base to PR.

Run only when ``dvc.lock`` records a different training split on the two sides. The base's split
is read from the DVC cache or remote (as the base's predictions are), the PR's from the working
tree (or, for ``--head REF``, from the cache too); each column declared in ``data.columns`` is
compared with ``modelci.judge.distance`` (PSI, a two-sample test, null rates, new and removed
categories).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelci.ci.predictions import read_base
from modelci.dvcfiles import lock_out_md5
from modelci.judge.distance import ColumnShift, column_shift
from modelci.judge.stats import StatsError
from modelci.layout import DEFAULT_PATHS

TRAIN_SPLIT = DEFAULT_PATHS.train.as_posix()
NUMERIC_TYPES = ("int", "float")


@dataclass
class DataShift:
    """The columns' shifts, largest PSI first, and why any column (or all) was not compared."""

    columns: list[ColumnShift] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(shift) for shift in self.columns], "notes": self.notes}


def _frame(data: bytes, where: str) -> Any:
    import pandas as pd

    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as error:
        raise StatsError(f"{where}: not a readable parquet table ({str(error)[:120]})") from None


def shift_columns(base: Any, head: Any, columns: Mapping[str, Any]) -> DataShift:
    """Compare every declared column both frames hold (pure: two DataFrames in)."""
    result = DataShift()
    for name, spec in columns.items():
        if name not in base.columns or name not in head.columns:
            result.notes.append(f"column {name!r} is not in both training splits")
            continue
        kind = (
            "numeric"
            if isinstance(spec, Mapping) and spec.get("type") in NUMERIC_TYPES
            else ("categorical")
        )
        try:
            result.columns.append(column_shift(str(name), base[name], head[name], kind))
        except ValueError as error:
            result.notes.append(str(error)[:300])
    result.columns.sort(key=lambda shift: -shift.psi)
    return result


def data_shift(
    root: Path,
    *,
    base_commit: str | None,
    base_lock: Any,
    head_lock: Any,
    head_params: Mapping[str, Any] | None,
    head_source: Any,
) -> DataShift:
    """The shift of the training split when it changed; empty when it did not (or is unknown)."""
    old, new = lock_out_md5(base_lock, TRAIN_SPLIT), lock_out_md5(head_lock, TRAIN_SPLIT)
    if old is None or new is None or old == new or base_commit is None:
        return DataShift()
    section = (head_params or {}).get("data")
    columns = section.get("columns") if isinstance(section, Mapping) else None
    if not isinstance(columns, Mapping) or not columns:
        return DataShift(notes=["data.columns is not declared: no per-column data diff"])
    head_data = head_source.read(TRAIN_SPLIT)  # the working tree's, or --head's DVC outputs
    if head_data is None:
        return DataShift(notes=[f"no {TRAIN_SPLIT} in the PR: no per-column data diff"])
    try:
        base_data = read_base(root, base_commit, TRAIN_SPLIT)
    except StatsError as error:
        return DataShift(notes=[f"base {TRAIN_SPLIT}: {error}: no per-column data diff"])
    try:
        base = _frame(base_data, f"base {TRAIN_SPLIT}")
        head = _frame(head_data, f"PR {TRAIN_SPLIT}")
    except StatsError as error:
        return DataShift(notes=[f"{error}: no per-column data diff"])
    return shift_columns(base, head, columns)

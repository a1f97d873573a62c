"""Both sides' per-row test predictions for the PR report, judged by ``modelci.judge.comparison``.

The head's predictions are the working tree's ``reports/predictions.parquet`` (after ``dvc
repro``); the base's are the same output as the base commit's ``dvc.lock`` records it, read from
the DVC cache or, failing that, the DVC remote (``dvc.api.open``), never recomputed. The two are
paired when the test split is the same on both sides (same md5 in ``dvc.lock``, same labels).
Whatever is missing leaves the gate on point comparisons, and a note says why.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelci.config import GateParams
from modelci.dvcfiles import lock_out_md5
from modelci.judge.comparison import Comparison, compare_sides, to_scored
from modelci.judge.stats import Scored, StatsError
from modelci.layout import DEFAULT_PATHS
from modelci.prediction_table import PREDICTIONS
from modelci.statefiles import MAX_FILE_BYTES

TEST_SPLIT = DEFAULT_PATHS.test.as_posix()


def read_base(root: Path, commit: str, path: str = PREDICTIONS) -> bytes:
    """The base commit's DVC output ``path`` from the DVC cache or remote; StatsError why not.

    DVC resolves ``path`` through the base commit's own ``dvc.lock``: the bytes are the base's,
    whatever the working tree holds.
    """
    import dvc.api

    try:
        with dvc.api.open(path, repo=str(root), rev=commit, mode="rb") as handle:
            data: bytes = handle.read(MAX_FILE_BYTES + 1)
    except MemoryError:
        raise  # the CLI's out-of-memory line, not "not in the cache"
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StatsError(f"not in the DVC cache or remote ({first[:200]})") from None
    if len(data) > MAX_FILE_BYTES:
        raise StatsError(f"larger than {MAX_FILE_BYTES} bytes")
    return data


@dataclass
class DvcOutputs:
    """A commit's DVC-tracked outputs (from the cache or remote), read like a state's files."""

    root: Path
    commit: str

    def read(self, path: str) -> bytes | None:
        try:
            return read_base(self.root, self.commit, path)
        except StatsError:
            return None


def _scored(data: bytes, params: Mapping[str, Any]) -> Scored:
    section = params.get("data") if isinstance(params.get("data"), Mapping) else {}
    assert isinstance(section, Mapping)  # noqa: S101 - narrowed just above
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except MemoryError:
        raise  # the CLI's out-of-memory line, not "not a readable parquet table"
    except Exception as error:
        raise StatsError(f"not a readable parquet table ({str(error)[:120]})") from None
    task = section.get("task", "binary")
    return to_scored(frame, task != "regression", section.get("positive_label"))


def changed_test_split(base_lock: Any, head_lock: Any) -> bool:
    """Whether ``dvc.lock`` records different test splits (unknown on either side: False)."""
    old, new = lock_out_md5(base_lock, TEST_SPLIT), lock_out_md5(head_lock, TEST_SPLIT)
    return old is not None and new is not None and old != new


def compare_predictions(
    gate: GateParams,
    *,
    root: Path,
    base_commit: str | None,
    base_params: Mapping[str, Any] | None,
    base_lock: Any,
    head_data: bytes | None,
    head_params: Mapping[str, Any] | None,
    head_lock: Any,
) -> Comparison:
    """Read both sides' predictions and compare them; a Comparison with notes when it cannot."""
    if not gate.metrics:
        return Comparison()
    if head_data is None:
        return Comparison(notes=[f"no {PREDICTIONS} in the PR: point comparisons only"])
    if base_commit is None or lock_out_md5(base_lock, PREDICTIONS) is None:
        return Comparison(
            notes=[f"the base's dvc.lock records no {PREDICTIONS}: point comparisons only"]
        )
    try:
        base_data = read_base(root, base_commit)
    except StatsError as error:
        return Comparison(notes=[f"base {PREDICTIONS}: {error}: point comparisons only"])
    try:
        base = _scored(base_data, base_params or {})
    except StatsError as error:
        return Comparison(notes=[f"base {PREDICTIONS}: {error}: point comparisons only"])
    try:
        head = _scored(head_data, head_params or {})
    except StatsError as error:
        return Comparison(notes=[f"PR {PREDICTIONS}: {error}: point comparisons only"])
    return compare_sides(gate, base, head, test_changed=changed_test_split(base_lock, head_lock))

"""The prediction log's lines as the writer built them before issue 24: one dict and one
``json.dumps`` per row. Kept as the reference its per-batch writer must equal byte for byte
(tests/unit/test_serving.py) and as the "before" of benchmarks/bench_serving_stages.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np


def per_row_lines(
    item: tuple[float, dict[str, Any], Mapping[str, np.ndarray], Any, tuple[str, str, bool]],
) -> str:
    """What ``PredictionLog._lines`` wrote for one queued request, row by row."""
    stamp, model, batch, prediction, (rid, pid, duplicate) = item
    columns = {
        name: (
            [None if value != value else value for value in values.tolist()]
            if values.dtype.kind == "f"
            else list(values.tolist())
        )
        for name, values in batch.items()
    }
    labels = prediction.labels.tolist()
    probabilities = None if prediction.probabilities is None else prediction.probabilities.tolist()
    out = []
    for index, label in enumerate(labels):
        record = {
            "ts": round(stamp, 6),
            **model,
            "request_id": rid,
            "row_id": f"{pid}-{index}",
            "input": {name: values[index] for name, values in columns.items()},
            "prediction": label,
        }
        if duplicate:
            record["duplicate_request_id"] = True
        if probabilities is not None:
            record["probabilities"] = probabilities[index]
        out.append(json.dumps(record, separators=(",", ":")))
    return "\n".join(out) + "\n"

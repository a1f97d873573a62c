"""The evaluate stage on a Dask cluster (``compute.engine: dask``, docs/scale.md).

The runner reads the test split one partition at a time and deals partition *i* to worker
*i mod n* (by name, as train does); the worker loads the model from its skops bytes (the trusted
types checked there too), predicts with ``train.n_threads`` threads and reduces its rows to a
:class:`modelci.judge.aggregates.Aggregate`, overall and per slice value. The runner adds the
aggregates up in partition order and writes what the local stage writes: ``metrics.json``,
``slices.json``, the plot tables and the model card from the sums, and the per-row predictions
as one Parquet file with one row group per partition (the runner holds one at a time), which the
PR report reads unchanged.

A numeric slice column with more than 10 distinct values is cut at its exact quartiles, as the
local stage's ``pd.qcut`` cuts it, computed from the column's merged value counts.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelci.config import DataParams, Params
from modelci.judge import aggregates as agg
from modelci.judge import metrics as m
from modelci.layout import DEFAULT_PATHS, StagePaths
from modelci.pipeline.cluster import connect, part_files, record_run, workers_by_name
from modelci.pipeline.plot_data import MAX_SCATTER_ROWS, evenly_spaced
from modelci.prediction_table import to_frame

QUANTILES = np.linspace(0, 1, 5)  # the local stage's pd.qcut(q=4)


def exact_quantiles(counts: pd.Series) -> np.ndarray:
    """The quantiles at :data:`QUANTILES` of the values ``counts`` counts (index: value), with
    the linear interpolation of ``Series.quantile``: the same numbers, from bounded input."""
    counts = counts.sort_index()
    values = counts.index.to_numpy()
    cumulative = np.cumsum(counts.to_numpy())
    total = int(cumulative[-1])

    def at(position: int) -> Any:
        return values[np.searchsorted(cumulative, position, side="right")]

    edges = []
    for q in QUANTILES:
        h = q * (total - 1)
        low = int(np.floor(h))
        high = min(low + 1, total - 1)
        edges.append(float(np.quantile(np.array([at(low), at(high)]), h - low)))
    return np.array(edges)


def slice_edges(files: list[Path], data: DataParams, columns: tuple[str, ...]) -> dict[str, Any]:
    """Cut points of the numeric slice columns with more than 10 distinct values."""
    numeric = [name for name in columns if data.columns[name].is_numeric]
    if not numeric:
        return {}
    counts: dict[str, pd.Series] = {}
    for path in files:
        part = pd.read_parquet(path, columns=numeric)
        for name in numeric:
            found = part[name].dropna().value_counts()
            counts[name] = found if name not in counts else counts[name].add(found, fill_value=0)
    return {
        name: exact_quantiles(found)
        for name, found in counts.items()
        if len(found) > 10  # the local stage's values.nunique() > 10
    }


def slice_values(frame: pd.DataFrame, column: str, edges: dict[str, Any]) -> pd.Series:
    """The slice each row falls in, labelled as the local stage labels it."""
    if column not in edges:
        return frame[column]
    cut = pd.cut(frame[column], bins=edges[column], include_lowest=True, duplicates="drop")
    return cut.astype(str)


def evaluate_partition(
    model_bytes: bytes,
    part: pd.DataFrame,
    params: Params,
    edges: dict[str, Any],
    positions: np.ndarray,
) -> dict[str, Any]:
    """One partition, on a worker: its predictions, their aggregate and the slices'."""
    from modelci.modelfile import load_model_bytes
    from modelci.threads import fixed_threads

    data = params.data
    model = load_model_bytes(model_bytes, str(DEFAULT_PATHS.model), params.train.trusted_types)
    with fixed_threads(params.train.n_threads):
        pred = m.predict(model, part[data.features], part[data.target])
    classification = data.is_classification
    slices: dict[str, dict[str, agg.Aggregate]] = {}
    for column in params.evaluate.slices:
        values = slice_values(part, column, edges)
        slices[column] = {
            str(value): agg.aggregate(m.subset(pred, (values == value).to_numpy()), classification)
            for value in values.dropna().unique()
        }
    table = to_frame(pred)
    return {
        "aggregate": agg.aggregate(pred, classification),
        "slices": slices,
        "predictions": table,
        "scatter": table.iloc[positions][["actual", "predicted"]],
    }


def _add_slices(
    total: dict[str, dict[str, agg.Aggregate]], part: dict[str, dict[str, agg.Aggregate]]
) -> None:
    for column, per_value in part.items():
        into = total.setdefault(column, {})
        for value, found in per_value.items():
            into[value] = into[value] + found if value in into else found


def evaluate(
    params: Params, model: Any, model_bytes: bytes, paths: StagePaths = DEFAULT_PATHS
) -> dict[str, Any]:
    """Score the test split on the cluster; the sums the stage's outputs are written from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from modelci.fileio import write_atomic

    data = params.data
    files = part_files(paths.test)
    edges = slice_edges(files, data, params.evaluate.slices)
    sizes = [pq.ParquetFile(path).metadata.num_rows for path in files]
    picked = evenly_spaced(sum(sizes), MAX_SCATTER_ROWS)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    started = time.monotonic()
    client = connect(params.compute)
    total = agg.Aggregate()
    slices: dict[str, dict[str, agg.Aggregate]] = {}
    scatter: list[pd.DataFrame] = []
    example: pd.DataFrame | None = None
    try:
        workers = workers_by_name(client)
        shared = client.scatter(model_bytes, broadcast=True)
        futures = []
        for index, path in enumerate(files):
            if not sizes[index]:
                continue
            part = pd.read_parquet(path)
            if example is None:
                example = part[data.features].head(3)
            where = [workers[index % len(workers)]]
            local = picked[(picked >= starts[index]) & (picked < starts[index + 1])]
            futures.append(
                client.submit(
                    evaluate_partition,
                    shared,
                    client.scatter(part, workers=where, direct=True),
                    params,
                    edges,
                    local - starts[index],
                    workers=where,
                    pure=False,
                )
            )

        def write(path: Path) -> None:
            nonlocal total
            writer: Any = None
            try:
                for future in futures:  # in partition order, one at a time
                    result = future.result()
                    future.release()
                    total = total + result["aggregate"]
                    _add_slices(slices, result["slices"])
                    scatter.append(result["scatter"])
                    table = pa.Table.from_pandas(result["predictions"], preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(path, table.schema)
                    writer.write_table(table)
            finally:
                if writer is not None:
                    writer.close()

        write_atomic(paths.predictions, write)
        seconds = time.monotonic() - started
        scored = f"{total.rows} test rows scored"
        record_run("evaluate", client, len(futures), seconds, scored)
    finally:
        client.close()
    if example is None:
        from modelci.errors import DataError

        raise DataError(f"{paths.test}: the test split is empty")
    classes = list(getattr(model, "classes_", []))
    return {
        "total": total,
        "slices": slices,
        "classes": classes,
        "scatter": pd.concat(scatter, ignore_index=True),
        "example": example,
    }

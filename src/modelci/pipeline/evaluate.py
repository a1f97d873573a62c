"""Stage ``evaluate``: metrics, per-slice metrics, plot data and a model card."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from modelci.config import Params
from modelci.fileio import file_digest, write_atomic, write_json, write_text
from modelci.judge import metrics as m
from modelci.layout import DEFAULT_PATHS, StagePaths
from modelci.modelfile import load_model_bytes, read_model_file
from modelci.pipeline import model_card
from modelci.pipeline.plot_data import aggregate_plot_tables, plot_tables
from modelci.prediction_table import to_frame
from modelci.threads import fixed_threads


def run(params: Params, paths: StagePaths = DEFAULT_PATHS) -> dict[str, float]:
    from modelci import tracking

    # An unreachable tracking server fails the stage before it writes anything: a half-run
    # evaluate left its DVC-cached outputs untracked, for `git add -A` to commit into git.
    tracking.probe(tracking.tracking_uri())
    model_bytes = read_model_file(paths.model)
    model = load_model_bytes(model_bytes, str(paths.model), params.train.trusted_types)
    if params.compute.engine == "dask":
        from modelci.judge import aggregates
        from modelci.pipeline import cluster_evaluate

        found = cluster_evaluate.evaluate(params, model, model_bytes, paths)
        scores = aggregates.metrics(found["total"], params.data, found["classes"])
        slices = aggregates.slice_metrics(
            found["slices"], params.data, found["classes"], params.evaluate.min_slice_rows
        )
        tables = aggregate_plot_tables(
            found["total"], found["classes"], found["scatter"], params.data
        )
        example = found["example"]
    else:
        test = pd.read_parquet(paths.test)
        with fixed_threads(params.train.n_threads):
            pred = m.predict(model, test[params.data.features], test[params.data.target])
        scores = m.compute_metrics(pred, params.data)
        slices = m.slice_metrics(
            pred, test, params.data, params.evaluate.slices, params.evaluate.min_slice_rows
        )
        tables = plot_tables(pred, params.data)
        frame = to_frame(pred)
        write_atomic(paths.predictions, lambda path: frame.to_parquet(path, index=False))
        example = test[params.data.features].head(3)
    profile: dict[str, Any] = json.loads(paths.profile.read_text(encoding="utf-8"))
    sha256 = file_digest(paths.model)
    compute = None
    if params.compute.engine == "dask" and paths.compute.is_file():
        compute = json.loads(paths.compute.read_text(encoding="utf-8"))
    card = model_card.render(params, scores, slices, profile, sha256, compute)

    for name, table in tables.items():
        write_text(paths.plots / name, table.to_csv(index=False))
    write_json(paths.slices, slices)
    write_text(paths.model_card, card)
    write_json(paths.metrics, scores)
    tracking.log_run(params, paths, model, example, scores, sha256)
    return scores

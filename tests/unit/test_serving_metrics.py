"""The prediction metrics on ``/metrics``: exact counts, buckets and sums for known batches, in
one process and in prometheus_client's multiprocess mode (several workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import values

from modelci.serving.app import _Metrics
from modelci.serving.runtime import Prediction

pytestmark = pytest.mark.unit

# Scores on the bucket bounds (le is inclusive), between them, below the first and above the
# last (a regressor's value lands in +Inf); all exact in binary, so any summing order agrees.
SCORES = [0.0, 0.1, 0.125, 0.5, 0.5, 0.75, 1.0, 1.0, 2.5, -0.25]
LABELS = ["b", "a", "b", "c", "b", "a", "b", "b", "c", "b"]
# Cumulative counts per bound 0.1 ... 1.0, +Inf, for SCORES observed twice.
BUCKETS = {
    "0.1": 6, "0.2": 8, "0.3": 8, "0.4": 8, "0.5": 12, "0.6": 12, "0.7": 12, "0.8": 14,
    "0.9": 14, "1.0": 18, "+Inf": 20,
}  # fmt: skip


def _prediction(labels: list[str], scores: list[float]) -> Prediction:
    return Prediction(labels=np.array(labels), probabilities=None, scores=np.array(scores))


@pytest.fixture(params=["one process", "multiprocess"])
def metrics(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> _Metrics:
    # _Metrics swaps prometheus_client's value class for the multiprocess one: restore it after.
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)
    if request.param == "one process":
        return _Metrics()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return _Metrics(str(tmp_path))


def _samples(text: str, prefix: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and not line.startswith("#")
    }


def test_a_batch_is_counted_by_label_and_bucketed_by_score_exactly(metrics: _Metrics) -> None:
    for _ in range(2):
        metrics.observe_prediction(_prediction(LABELS, SCORES), classifier=True)
    text = metrics.exposition().decode()
    assert _samples(text, "modelci_predicted_rows_total") == {"modelci_predicted_rows_total": 20}
    assert _samples(text, "modelci_predictions_total") == {
        'modelci_predictions_total{label="a"}': 4,
        'modelci_predictions_total{label="b"}': 12,
        'modelci_predictions_total{label="c"}': 4,
    }
    assert _samples(text, "modelci_prediction_score_bucket") == {
        f'modelci_prediction_score_bucket{{le="{bound}"}}': count
        for bound, count in BUCKETS.items()
    }
    assert _samples(text, "modelci_prediction_score_count") == {
        "modelci_prediction_score_count": 20
    }
    assert _samples(text, "modelci_prediction_score_sum") == {
        "modelci_prediction_score_sum": 2 * sum(SCORES)
    }


def test_a_regressor_counts_rows_and_scores_but_no_labels(metrics: _Metrics) -> None:
    metrics.observe_prediction(_prediction(["x"] * 3, [0.0625, 3.0, 0.25]), classifier=False)
    metrics.observe_prediction(_prediction([], []), classifier=False)
    text = metrics.exposition().decode()
    assert _samples(text, "modelci_predicted_rows_total") == {"modelci_predicted_rows_total": 3}
    assert _samples(text, "modelci_predictions_total") == {}
    buckets = _samples(text, "modelci_prediction_score_bucket")
    assert buckets['modelci_prediction_score_bucket{le="0.1"}'] == 1
    assert buckets['modelci_prediction_score_bucket{le="0.2"}'] == 1
    assert buckets['modelci_prediction_score_bucket{le="0.3"}'] == 2
    assert buckets['modelci_prediction_score_bucket{le="1.0"}'] == 2
    assert buckets['modelci_prediction_score_bucket{le="+Inf"}'] == 3
    assert _samples(text, "modelci_prediction_score_sum") == {
        "modelci_prediction_score_sum": 3.3125
    }

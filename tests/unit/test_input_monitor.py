"""The live input gauges: windowed summaries equal the same statistics computed directly on the
window's rows, violation labels stay bounded, and multiprocess mode aggregates per worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modelci.config import Column
from modelci.model_source import ModelInfo
from modelci.serving.app import ServedModel, ServingApp
from modelci.serving.input_monitor import PROBLEM_KINDS, InputMonitor, problem_kind
from modelci.serving.runtime import Prediction
from modelci.serving.schema import InputError, InputSchema

pytestmark = pytest.mark.unit

COLORS = ("red", "blue", "green")
FIELDS = (
    Column("color", "category", nullable=True, categories=COLORS),
    Column("size", "float", nullable=True),
    Column("flag", "bool"),
    Column("note", "category"),
)
SCHEMA = InputSchema(FIELDS)


def batch(rng: np.random.Generator, rows: int, shift: float = 0.0) -> dict[str, list[Any]]:
    size = rng.normal(shift, 1.0, rows)
    return {
        "color": [None if rng.random() < 0.1 else COLORS[rng.integers(0, 2)] for _ in range(rows)],
        "size": [None if rng.random() < 0.2 else float(v) for v in size],
        "flag": [bool(v) for v in rng.integers(0, 2, rows)],
        "note": ["x"] * rows,
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    assert found is not None, f"{name}{labels} not exported"
    return found


def expected(rows: dict[str, list[Any]], scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    sizes = [v for v in rows["size"] if v is not None]
    colors = [v for v in rows["color"] if v is not None]
    return {
        "size_mean": sum(sizes) / len(sizes),
        "size_null": 1 - len(sizes) / len(rows["size"]),
        "color_null": 1 - len(colors) / len(rows["color"]),
        "shares": {c: colors.count(c) / len(colors) for c in COLORS},
        "flag_mean": sum(rows["flag"]) / len(rows["flag"]),
        "score_mean": float(np.mean(scores)),
        "label_one": float(np.mean(labels == 1)),
    }


def feed(monitor: InputMonitor, rng: np.random.Generator, batches: int, rows: int, shift: float):
    """Feed batches; returns the concatenated rows and predictions fed."""
    fed: dict[str, list[Any]] = {spec.name: [] for spec in FIELDS}
    scores, labels = [], []
    for _ in range(batches):
        columns = batch(rng, rows, shift)
        score = rng.random(rows)
        label = (score > 0.5).astype("int64")
        monitor.observe(columns, score, label)
        for name in fed:
            fed[name].extend(columns[name])
        scores.append(score)
        labels.append(label)
    return fed, np.concatenate(scores), np.concatenate(labels)


def test_gauges_equal_the_statistics_of_the_rows_fed() -> None:
    registry = CollectorRegistry()
    monitor = InputMonitor(FIELDS, [0, 1], registry, window_rows=10_000, flush_rows=50)
    fed, scores, labels = feed(monitor, np.random.default_rng(0), 37, 7, 0.0)
    monitor.flush()
    want = expected(fed, scores, labels)
    assert value(registry, "modelci_input_window_rows") == len(scores)
    assert value(registry, "modelci_input_mean", feature="size") == pytest.approx(want["size_mean"])
    assert value(registry, "modelci_input_null_ratio", feature="size") == pytest.approx(
        want["size_null"]
    )
    assert value(registry, "modelci_input_mean", feature="flag") == pytest.approx(want["flag_mean"])
    assert value(registry, "modelci_input_null_ratio", feature="color") == pytest.approx(
        want["color_null"]
    )
    for color in COLORS:
        share = value(registry, "modelci_input_category_share", feature="color", category=color)
        assert share == pytest.approx(want["shares"][color])
    assert value(registry, "modelci_input_unknown_ratio", feature="color") == pytest.approx(0.0)
    assert value(registry, "modelci_prediction_window_mean") == pytest.approx(want["score_mean"])
    assert value(registry, "modelci_prediction_window_share", label="1") == pytest.approx(
        want["label_one"]
    )
    # A category column without declared categories gets its null ratio, no per-value labels.
    assert value(registry, "modelci_input_null_ratio", feature="note") == 0.0
    assert registry.get_sample_value("modelci_input_unknown_ratio", {"feature": "note"}) is None


def test_the_window_forgets_old_rows() -> None:
    registry = CollectorRegistry()
    monitor = InputMonitor(FIELDS, [0, 1], registry, window_rows=200, flush_rows=100)
    rng = np.random.default_rng(1)
    feed(monitor, rng, 10, 100, shift=0.0)
    fed, scores, labels = feed(monitor, rng, 2, 100, shift=50.0)
    monitor.flush()
    assert value(registry, "modelci_input_window_rows") == 200
    want = expected(fed, scores, labels)
    assert value(registry, "modelci_input_mean", feature="size") == pytest.approx(want["size_mean"])


def test_batches_are_buffered_until_a_flush() -> None:
    registry = CollectorRegistry()
    monitor = InputMonitor(FIELDS, None, registry, flush_rows=10, flush_seconds=3600)
    rng = np.random.default_rng(2)
    feed(monitor, rng, 3, 3, 0.0)
    assert value(registry, "modelci_input_window_rows") == 0
    feed(monitor, rng, 1, 3, 0.0)  # 12 rows pending >= 10
    assert value(registry, "modelci_input_window_rows") == 12


def test_numpy_columns_and_python_lists_give_the_same_gauges() -> None:
    rows = batch(np.random.default_rng(3), 40)
    scores = np.linspace(0, 1, 40)
    labels = (scores > 0.5).astype("int64")
    arrays = {name: np.array(values, dtype=object) for name, values in rows.items()}
    arrays["flag"] = np.array(rows["flag"], dtype=bool)
    # The columnar path: a float column with NaN for null, kept as an array until the flush.
    arrays["size"] = np.array([np.nan if v is None else v for v in rows["size"]], dtype="float64")
    results = []
    for columns in (rows, arrays):
        registry = CollectorRegistry()
        monitor = InputMonitor(FIELDS, [0, 1], registry)
        monitor.observe(columns, scores, labels)
        monitor.flush()
        results.append(
            {
                (m.name, tuple(sorted(s.labels.items()))): s.value
                for m in registry.collect()
                for s in m.samples
                if m.name.startswith(("modelci_input", "modelci_prediction"))
            }
        )
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("required field is missing", "missing"),
        ("must not be null", "null"),
        ("3 is below the minimum 5", "out_of_range"),
        ("'teal' is not one of the declared categories (red, blue)", "unknown_category"),
        ("unknown field (not in the model's input schema)", "unknown_field"),
        ("expected an object of column values, got array", "not_an_object"),
        ("expected a number, got string", "wrong_type"),
        ("something new", "other"),
    ],
)
def test_problem_kinds(text: str, kind: str) -> None:
    assert problem_kind(text) == kind
    assert kind in PROBLEM_KINDS


def test_violation_labels_are_bounded() -> None:
    registry = CollectorRegistry()
    monitor = InputMonitor(FIELDS, None, registry)
    with pytest.raises(InputError) as caught:
        SCHEMA.columns_from_records(
            [
                {"color": "teal", "size": 1.0, "flag": True, "note": "x"},
                {"size": "big", "flag": True, "note": "x", "attacker-chosen-name-1": 1},
                [1, 2],
            ]
        )
    monitor.reject(caught.value)
    monitor.reject(InputError(400, "BAD_REQUEST", "malformed JSON"))
    counted = {
        (s.labels["field"], s.labels["problem"]): s.value
        for m in registry.collect()
        if m.name == "modelci_input_violations"
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert counted == {
        ("color", "unknown_category"): 1,
        ("size", "wrong_type"): 1,
        ("__other__", "unknown_field"): 1,
        ("__row__", "not_an_object"): 1,
        ("__request__", "bad_request"): 1,
    }


class _Stub:
    runtime = "stub"

    def __init__(self) -> None:
        self.classes: list[Any] | None = [0, 1]

    def predict(self, columns: dict[str, list[Any]]) -> Prediction:
        rows = len(columns["size"])
        scores = np.full(rows, 0.75)
        return Prediction(np.ones(rows, dtype="int64"), None, scores)


def test_the_app_exports_the_gauges_and_counts_refused_input() -> None:
    import httpx

    info = ModelInfo(uri="m.skops", kind="file", sha256="ab" * 32, version="7")
    app = ServingApp(ServedModel(info, SCHEMA, _Stub(), "stub"))
    good = {"color": "red", "size": 2.0, "flag": True, "note": "x"}

    async def go() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"content-type": "application/json"}
            await client.post("/predict", content=json.dumps([good, good]), headers=headers)
            bad = {**good, "size": "big"}
            refused = await client.post("/predict", content=json.dumps(bad), headers=headers)
            assert refused.status_code == 422
            app.input_monitor.flush()
            return (await client.get("/metrics")).text

    text = asyncio.run(go())
    assert 'modelci_input_mean{feature="size"} 2.0' in text
    assert 'modelci_input_category_share{category="red",feature="color"} 1.0' in text
    assert "modelci_prediction_window_mean 0.75" in text
    assert 'modelci_input_violations_total{field="size",problem="wrong_type"} 1.0' in text
    assert "modelci_model_version 7.0" in text
    assert "modelci_model_ready 1.0" in text


MULTIPROCESS_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from prometheus_client import CollectorRegistry
    from modelci.serving.input_monitor import InputMonitor
    from modelci.config import Column

    monitor = InputMonitor([Column("size", "float")], None, CollectorRegistry())
    size = float(sys.argv[1])
    monitor.observe({"size": [size] * 10}, np.zeros(10), np.zeros(10))
    monitor.flush()
    """)


def test_multiprocess_mode_keeps_one_window_per_worker(tmp_path: Path) -> None:
    """Two worker processes write their gauges to the multiprocess directory; the collector
    shows each worker's ratio (``pid`` label, averaged by the recording rules) and the summed
    window rows."""
    from prometheus_client import multiprocess

    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": ""}
    for size in ("1.0", "3.0"):
        subprocess.run(
            [sys.executable, "-c", MULTIPROCESS_WORKER, size], env=env, check=True, timeout=60
        )
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    samples: dict[str, list[Any]] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            samples.setdefault(sample.name, []).append(sample)
    means = sorted(s.value for s in samples["modelci_input_mean"])
    assert means == [1.0, 3.0]
    assert all("pid" in s.labels for s in samples["modelci_input_mean"])
    assert [s.value for s in samples["modelci_input_window_rows"]] == [20.0]

"""Per-row prediction ids (issues 19.3 and 23.6): every logged row gets its own server-made id,
returned to the client; a repeated client ``X-Request-ID`` is flagged; a label join that is not
one to one is refused naming the ids."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from modelci.drift.inputs import read_window
from modelci.drift.realized import join_labels
from modelci.errors import DataError
from modelci.serving.app import ServingApp
from modelci.serving.predlog import PredictionLog, read_log
from tests.unit.test_serving import JSON, ROW, call, served

pytestmark = pytest.mark.unit


def _logged(tmp_path: Path, app: ServingApp) -> list[dict[str, object]]:
    assert app.prediction_log is not None
    app.prediction_log.close()
    return list(read_log(tmp_path))


def _app(tmp_path: Path) -> ServingApp:
    return ServingApp(served(), prediction_log=PredictionLog(tmp_path, sample_rate=1.0))


def test_each_logged_row_has_its_own_server_made_id_returned_to_the_client(
    tmp_path: Path,
) -> None:
    app = _app(tmp_path)
    first = call(app, "POST", "/predict", json.dumps([ROW] * 3).encode(), **JSON)
    second = call(
        app, "POST", "/invocations", json.dumps({"instances": [ROW] * 2}).encode(),
        **JSON, **{"x-request-id": "order-42"},
    )  # fmt: skip
    assert first.status_code == second.status_code == 200
    prediction_id = first.json()["prediction_id"]
    assert first.headers["x-prediction-id"] == prediction_id
    assert second.headers["x-request-id"] == "order-42"  # the client's id is still echoed
    assert set(second.json()) == {"predictions"}  # MLflow's response shape unchanged
    records = _logged(tmp_path, app)
    assert [r["row_id"] for r in records[:3]] == [f"{prediction_id}-{i}" for i in range(3)]
    other = second.headers["x-prediction-id"]
    assert [r["row_id"] for r in records[3:]] == [f"{other}-0", f"{other}-1"]
    assert [r["request_id"] for r in records[3:]] == ["order-42", "order-42"]
    assert len({r["row_id"] for r in records}) == 5


def test_a_repeated_client_request_id_is_flagged_in_the_log_and_metrics(tmp_path: Path) -> None:
    app = _app(tmp_path)
    for _ in range(2):
        response = call(
            app, "POST", "/predict", json.dumps(ROW).encode(), **JSON, **{"x-request-id": "o-1"}
        )
        assert response.status_code == 200
    call(app, "POST", "/predict", json.dumps(ROW).encode(), **JSON)  # no id: never a duplicate
    records = _logged(tmp_path, app)
    assert [r.get("duplicate_request_id", False) for r in records] == [False, True, False]
    metrics = call(app, "GET", "/metrics").text
    assert "modelci_duplicate_request_ids_total 1.0" in metrics


def test_the_poisoning_join_is_refused_naming_the_id() -> None:
    """Issue 19.3: `order-42` once, then a batch reusing it: one label must not join 5,001 rows."""
    window = pd.DataFrame(
        {
            "request_id": ["order-42"] + ["order-42"] * 50 + ["b"],
            "row_id": [f"p{i}" for i in range(52)],
            "x": range(52),
        }
    )
    labels = pd.DataFrame({"request_id": ["order-42", "b"], "y": [1, 0]})
    with pytest.raises(DataError) as error:
        join_labels(window, labels, "y", "labels.csv")
    message = str(error.value)
    assert "not one to one" in message
    assert "'order-42' (51 rows)" in message
    assert "row_id" in message  # says how to label a batch


def test_labels_keyed_by_row_id_join_a_batch_one_to_one(tmp_path: Path) -> None:
    app = _app(tmp_path)
    response = call(app, "POST", "/predict", json.dumps([ROW] * 4).encode(), **JSON)
    prediction_id = response.json()["prediction_id"]
    _logged(tmp_path, app)
    window = read_window(tmp_path)
    labels = pd.DataFrame({"row_id": [f"{prediction_id}-{i}" for i in range(4)], "y": [0, 1, 0, 1]})
    joined = join_labels(window, labels, "y", "labels.csv")
    assert list(joined["y"]) == [0, 1, 0, 1]
    twice = pd.concat([labels, labels.iloc[:1]])
    with pytest.raises(DataError, match=f"row id '{prediction_id}-0' has more than one label"):
        join_labels(window, twice, "y", "labels.csv")


def test_remembering_client_ids_is_bounded(tmp_path: Path) -> None:
    from modelci.serving.requestid import RecentIds

    recent = RecentIds(capacity=3)
    assert [recent.seen(name) for name in "abca"] == [False, False, False, True]
    for name in "defg":
        recent.seen(name)
    assert len(recent) == 3
    assert not recent.seen("a")  # forgotten, so new again
    started = time.perf_counter()
    many = RecentIds(capacity=1000)
    for index in range(100_000):
        many.seen(str(index))
    assert len(many) == 1000
    assert time.perf_counter() - started < 5

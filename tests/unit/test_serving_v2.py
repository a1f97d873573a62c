"""The Open Inference Protocol (v2) routes in process: metadata, health, and inference through
the same validation, limits, metrics and prediction log as ``/predict``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelci.model_source import ModelInfo
from modelci.serving.app import ServedModel, ServingApp, Settings
from modelci.serving.predlog import PredictionLog, read_log
from modelci.serving.runtime import Prediction
from modelci.serving.schema import Batch, InputError
from modelci.serving.v2 import DATATYPES, InferRequest, batch_from_infer
from tests.unit.test_serving import JSON, JSON_VALUES, ROW, SCHEMA, StubPredictor, call

pytestmark = pytest.mark.unit

ROWS = [ROW, {**ROW, "color": "blue", "size": 3.0, "count": None, "flag": False}]
DATATYPE = {"color": "BYTES", "size": "FP64", "count": "INT64", "flag": "BOOL"}


class RecordingPredictor(StubPredictor):
    """The stub, keeping the batches it was given."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(fail)
        self.batches: list[Batch] = []

    def predict(self, columns: Batch) -> Prediction:
        self.batches.append(columns)
        return super().predict(columns)


def app_of(
    settings: Settings | None = None, fail: bool = False, **options: Any
) -> tuple[ServingApp, RecordingPredictor]:
    info = ModelInfo("models:/m@champion", "registry", "ab" * 32, name="m", version="1")
    predictor = RecordingPredictor(fail)
    return ServingApp(ServedModel(info, SCHEMA, predictor, "stub"), settings, **options), predictor


def per_column(rows: list[dict[str, Any]], **change: Any) -> dict[str, Any]:
    """A v2 request of ``rows``, one flat tensor per column."""
    return {
        "inputs": [
            {"name": name, "shape": [len(rows)], "datatype": DATATYPE[name],
             "data": [row[name] for row in rows]}
            for name in DATATYPE
        ],
        **change,
    }  # fmt: skip


def infer(app: ServingApp, payload: Any, path: str = "/v2/models/m/infer", **headers: str) -> Any:
    return call(app, "POST", path, json.dumps(payload).encode(), **{**JSON, **headers})


def same_batches(first: Batch, second: Batch) -> None:
    assert list(first) == list(second)
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert first[name].tolist() == second[name].tolist() or (
            np.allclose(first[name], second[name], equal_nan=True)
        ), name


def test_server_metadata_health_and_model_metadata() -> None:
    app, _ = app_of()
    assert call(app, "GET", "/v2").json()["name"] == "modelci"
    assert call(app, "GET", "/v2").json()["extensions"] == []
    assert call(app, "GET", "/v2/health/live").json() == {"live": True}
    assert call(app, "GET", "/v2/health/ready").json() == {"ready": True}
    metadata = call(app, "GET", "/v2/models/m").json()
    assert metadata == {
        "name": "m",
        "versions": ["1"],
        "platform": "sklearn_skops",
        "inputs": [
            {"name": "color", "datatype": "BYTES", "shape": [-1]},
            {"name": "size", "datatype": "FP64", "shape": [-1]},
            {"name": "count", "datatype": "INT64", "shape": [-1]},
            {"name": "flag", "datatype": "BOOL", "shape": [-1]},
        ],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
        ],
    }
    assert call(app, "GET", "/v2/models/m/versions/1").json() == metadata
    assert call(app, "GET", "/v2/models/m/ready").json() == {"name": "m", "ready": True}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v2/models/other", "no model 'other': this server serves 'm'"),
        ("/v2/models/other/ready", "no model 'other': this server serves 'm'"),
        ("/v2/models/m/versions/7/ready", "model 'm' has no version '7' here (serving version 1)"),
        ("/v2/nothing", "no such endpoint: /v2/nothing"),
    ],
)
def test_unknown_models_and_paths_are_404_in_the_protocols_error_shape(
    path: str, message: str
) -> None:
    app, _ = app_of()
    response = call(app, "GET", path)
    assert response.status_code == 404
    assert response.json() == {"error": message}
    assert infer(app, per_column(ROWS), "/v2/models/other/infer").status_code == 404


def test_infer_feeds_the_model_what_predict_feeds_it_and_answers_tensors() -> None:
    app, predictor = app_of()
    assert call(app, "POST", "/predict", json.dumps(ROWS).encode(), **JSON).status_code == 200
    response = infer(app, per_column(ROWS, id="req-7", parameters={"x": 1}))
    assert response.status_code == 200, response.text
    same_batches(predictor.batches[0], predictor.batches[1])
    body = response.json()
    assert body == {
        "model_name": "m",
        "model_version": "1",
        "id": "req-7",
        "parameters": {"prediction_id": response.headers["x-prediction-id"]},
        "outputs": [
            {"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 1]},
            {"name": "predict_proba", "shape": [2, 2], "datatype": "FP64",
             "data": [0.25, 0.75, 0.25, 0.75]},
        ],
    }  # fmt: skip


def test_natural_nested_data_one_tensor_and_bytes_all_read_as_the_same_rows() -> None:
    app, predictor = app_of()
    flat = per_column(ROWS)
    nested = per_column(ROWS)
    for tensor in nested["inputs"]:
        tensor["shape"] = [2, 1]
        tensor["data"] = [[value] for value in tensor["data"]]
    # one [rows, columns] tensor of text, as a client sends a table of mixed types
    text = [
        "" if row[name] is None else str(row[name]).lower() if isinstance(row[name], bool)
        else str(row[name])
        for row in ROWS for name in DATATYPE
    ]  # fmt: skip
    table = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "BYTES", "data": text}]}
    rows_nested = {**table, "inputs": [{**table["inputs"][0], "data": [text[:4], text[4:]]}]}
    for payload in (flat, nested, table, rows_nested):
        response = infer(app, payload, "/v2/models/m/versions/1/infer")
        assert response.status_code == 200, response.text
    for batch in predictor.batches[1:]:
        same_batches(predictor.batches[0], batch)


def test_requested_outputs_only() -> None:
    app, _ = app_of()
    response = infer(app, per_column(ROWS, outputs=[{"name": "predict_proba"}]))
    assert [output["name"] for output in response.json()["outputs"]] == ["predict_proba"]
    response = infer(app, per_column(ROWS, outputs=[{"name": "scores"}]))
    assert response.status_code == 400
    assert response.json() == {
        "error": "outputs[0].name: 'scores' is not an output of this model (predict, predict_proba)"
    }


def _error(app: ServingApp, path: str, payload: Any) -> tuple[int, str]:
    response = call(app, "POST", path, json.dumps(payload).encode(), **JSON)
    body = response.json()
    return response.status_code, body["error"] if "error" in body else body["message"]


@pytest.mark.parametrize(
    "change",
    [
        {"size": 11},
        {"size": "1"},
        {"color": "green"},
        {"count": 1.5},
        {"flag": None},
    ],
)
def test_bad_values_get_the_same_status_and_message_as_predict(change: dict[str, Any]) -> None:
    app, _ = app_of()
    rows = [ROW, {**ROW, **change}]
    expected = _error(app, "/predict", rows)
    assert expected[0] == 422
    assert _error(app, "/v2/models/m/infer", per_column(rows)) == expected


def test_an_unknown_or_missing_column_gets_the_same_message_as_predict() -> None:
    app, _ = app_of()
    extra = per_column(ROWS)
    extra["inputs"].append({"name": "extra", "shape": [2], "datatype": "FP64", "data": [1, 2]})
    expected = _error(app, "/predict", [{**row, "extra": 1} for row in ROWS])
    assert _error(app, "/v2/models/m/infer", extra) == expected
    missing = per_column(ROWS)
    missing["inputs"] = [t for t in missing["inputs"] if t["name"] != "size"]
    expected = _error(
        app, "/predict", [{k: v for k, v in row.items() if k != "size"} for row in ROWS]
    )
    assert _error(app, "/v2/models/m/infer", missing) == expected


def test_the_row_and_body_limits_are_the_same() -> None:
    app, _ = app_of(Settings(max_rows=1))
    status, message = _error(app, "/v2/models/m/infer", per_column(ROWS))
    assert (status, message) == _error(app, "/predict", ROWS)
    assert status == 413
    app, _ = app_of(Settings(max_body_bytes=64))
    body = json.dumps(per_column(ROWS)).encode()
    assert _error(app, "/v2/models/m/infer", per_column(ROWS)) == (
        413, f"body of {len(body)} bytes over the limit of 64 bytes"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shape": [3]}, "inputs[1] ('size'): 3 rows, but inputs[0] has 2"),
        ({"shape": [2, 2]}, "inputs[1] ('size'): shape [2, 2]: a column's tensor is [rows] or"),
        ({"data": [1.5]}, "inputs[1] ('size'): shape [2] holds 2 values, data has 1"),
        ({"data": [[1.5], 3]}, "inputs[1] ('size').data: nested deeper than shape [2]"),
        (
            {"shape": [2, 1], "data": [[1.5], 3]},
            "inputs[1] ('size').data: nested arrays do not follow shape [2, 1] (dimension 1)",
        ),
        ({"datatype": "BOOL"}, "inputs[1] ('size'): datatype BOOL does not fit column 'size'"),
        ({"datatype": "FP128"}, "inputs[1] ('size').datatype: 'FP128' is not a tensor datatype"),
        ({"shape": [-2]}, "inputs[1] ('size').shape: expected an array of sizes"),
        ({"parameters": {"binary_data_size": 16}}, "inputs[1]: binary tensor data is not"),
        ({"extra": 1}, "inputs[1]: unknown key(s): extra"),
    ],
)
def test_malformed_tensors_are_400_naming_the_tensor(change: dict[str, Any], message: str) -> None:
    app, _ = app_of()
    payload = per_column(ROWS)
    payload["inputs"][1].update(change)
    status, error = _error(app, "/v2/models/m/infer", payload)
    assert (status, error[: len(message)]) == (400, message)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1], "request: expected an object, got array"),
        ({"inputs": []}, "inputs: expected a non-empty array of tensors"),
        ({"inputs": [], "extra": 1}, "request: unknown key(s): extra"),
        ({**per_column(ROWS), "id": 5}, "id: expected a string, got number"),
        ({**per_column(ROWS), "parameters": {"a": [1]}}, "parameters.a: expected a string,"),
        (
            {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "BYTES", "data": [""] * 6}]},
            "inputs[0] ('x'): shape [2, 3]: one tensor holds [rows, 4], the columns color, size",
        ),
    ],
)
def test_malformed_requests_are_400(payload: Any, message: str) -> None:
    app, _ = app_of()
    status, error = _error(app, "/v2/models/m/infer", payload)
    assert (status, error[: len(message)]) == (400, message)


def test_transport_errors_in_the_protocols_shape() -> None:
    app, _ = app_of()
    body = json.dumps(per_column(ROWS)).encode()
    response = call(app, "POST", "/v2/models/m/infer", body, **{"content-type": "text/csv"})
    assert (response.status_code, response.json()) == (
        415, {"error": "expected Content-Type application/json, got text/csv"}
    )  # fmt: skip
    assert call(app, "POST", "/v2/models/m/infer", body).status_code == 200  # no Content-Type
    response = call(app, "POST", "/v2/models/m/infer", b"{", **JSON)
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")
    binary = call(
        app, "POST", "/v2/models/m/infer", body, **JSON, **{"inference-header-content-length": "9"}
    )
    assert binary.status_code == 400
    assert "binary tensor data" in binary.json()["error"]
    wrong = call(app, "GET", "/v2/models/m/infer")
    assert (wrong.status_code, wrong.json()) == (
        405, {"error": "/v2/models/m/infer accepts POST"}
    )  # fmt: skip


@pytest.mark.usefixtures("server_logs")
def test_a_model_failure_is_a_500_in_the_protocols_shape() -> None:
    app, _ = app_of(fail=True)
    response = infer(app, per_column(ROWS))
    assert (response.status_code, response.json()) == (
        500, {"error": "the model failed on this input"}
    )  # fmt: skip


def test_draining_makes_the_ready_endpoints_false() -> None:
    app, _ = app_of()
    app.draining = True
    response = call(app, "GET", "/v2/health/ready")
    assert (response.status_code, response.json()) == (400, {"ready": False})
    assert call(app, "GET", "/v2/models/m/ready").json() == {"name": "m", "ready": False}
    assert call(app, "GET", "/v2/health/live").status_code == 200


def test_infer_is_counted_and_logged_like_predict(tmp_path: Path) -> None:
    app, _ = app_of(prediction_log=PredictionLog(tmp_path, sample_rate=1.0))
    response = infer(app, per_column(ROWS, id="r1"), **{"x-request-id": "order-9"})
    assert response.status_code == 200
    infer(app, {"inputs": []})
    metrics = call(app, "GET", "/metrics").text
    assert (
        'modelci_http_requests_total{method="POST",path="/v2/models/{name}/infer",status="200"} 1.0'
        in metrics
    )
    assert (
        'modelci_http_errors_total{error_code="BAD_REQUEST",path="/v2/models/{name}/infer",'
        'status="400"} 1.0' in metrics
    )
    assert "modelci_predicted_rows_total 2.0" in metrics
    assert app.prediction_log is not None
    app.prediction_log.close()
    records = list(read_log(tmp_path))
    pid = response.json()["parameters"]["prediction_id"]
    assert [r["row_id"] for r in records] == [f"{pid}-0", f"{pid}-1"]
    assert [r["request_id"] for r in records] == ["order-9", "order-9"]
    assert records[1]["input"]["color"] == "blue"


def test_the_openapi_document_describes_the_v2_routes() -> None:
    app, _ = app_of()
    document = call(app, "GET", "/openapi.json").json()
    infer_operation = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer_operation["parameters"][0]["schema"]["enum"] == ["m"]
    example = infer_operation["requestBody"]["content"]["application/json"]["example"]
    assert infer(app, example).status_code == 200
    assert {"/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}"} <= set(
        document["paths"]
    )


TENSORS = st.fixed_dictionaries(
    {
        "name": st.sampled_from([*DATATYPE, "x"]),
        "shape": st.lists(st.integers(-1, 3) | st.booleans(), min_size=0, max_size=3),
        "datatype": st.sampled_from([*DATATYPES, "X"]),
        "data": st.lists(JSON_VALUES, max_size=6),
    },
    optional={"parameters": JSON_VALUES},
)


@settings(max_examples=300, deadline=None)
@given(
    payload=JSON_VALUES
    | st.fixed_dictionaries(
        {"inputs": st.lists(TENSORS, max_size=4)},
        optional={"id": JSON_VALUES, "outputs": JSON_VALUES, "parameters": JSON_VALUES},
    )
)
def test_any_json_is_either_valid_rows_or_an_input_error(payload: Any) -> None:
    outcome = _validated(payload)
    if isinstance(outcome, InputError):
        assert 400 <= outcome.status < 500
        assert len(outcome.message) < 1000
    else:
        assert all(len(values) == outcome[0] for values in outcome[1].values())


def _validated(payload: Any) -> tuple[int, Batch] | InputError:
    try:
        raw = batch_from_infer(payload, SCHEMA, 10, InferRequest(), ("predict", "predict_proba"))
        return raw.rows, SCHEMA.validate(raw)
    except InputError as error:
        return error

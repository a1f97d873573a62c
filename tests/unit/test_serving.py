"""Unit tests of the serving pieces: schema validation, request formats, prediction log,
model URIs, and the ASGI app in process with a stub predictor."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelci import model_source
from modelci.config import Column
from modelci.layout import prediction_log_files
from modelci.model_source import ModelInfo, ModelSourceError
from modelci.serving import defaults
from modelci.serving.app import ServedModel, ServingApp, Settings
from modelci.serving.openapi import openapi_document
from modelci.serving.payload import batch_from_body, batch_from_invocation
from modelci.serving.predlog import PredictionLog, read_log
from modelci.serving.runtime import Prediction
from modelci.serving.schema import Batch, InputError, InputSchema, RawBatch
from tests.predlog_reference import per_row_lines

pytestmark = pytest.mark.unit

TOKEN = "t"  # noqa: S105 - a test value
SCHEMA = InputSchema(
    [
        Column("color", "category", categories=("red", "blue")),
        Column("size", "float", min=0, max=10),
        Column("count", "int", nullable=True),
        Column("flag", "bool"),
    ]
)
ROW = {"color": "red", "size": 1.5, "count": 2, "flag": True}


def problems(rows: list[Any]) -> list[tuple[int, str | None, str]]:
    with pytest.raises(InputError) as caught:
        SCHEMA.columns_from_records(rows)
    assert caught.value.status == 422
    return [(p["row"], p["field"], p["problem"]) for p in caught.value.problems]


def test_valid_rows_become_columns_in_schema_order() -> None:
    columns = SCHEMA.columns_from_records([ROW, {**ROW, "count": None, "size": 3}])
    assert list(columns) == ["color", "size", "count", "flag"]
    assert columns["count"][0] == 2
    assert np.isnan(columns["count"][1])
    assert columns["size"].tolist() == [1.5, 3.0]


def test_nullable_field_may_be_omitted_but_others_may_not() -> None:
    row = {k: v for k, v in ROW.items() if k != "count"}
    assert np.isnan(SCHEMA.columns_from_records([row])["count"]).tolist() == [True]
    assert problems([{k: v for k, v in ROW.items() if k != "size"}]) == [
        (0, "size", "required field is missing")
    ]


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"color": "green"}, "color", "not one of the declared categories"),
        ({"color": ["red"]}, "color", "got array"),
        ({"color": None}, "color", "must not be null"),
        ({"size": "1"}, "size", "expected a number, got string"),
        ({"size": True}, "size", "expected a number, got boolean"),
        ({"size": 11}, "size", "above the maximum 10"),
        ({"size": -1}, "size", "below the minimum 0"),
        ({"size": float("inf")}, "size", "finite"),
        ({"count": 1.5}, "count", "expected an integer"),
        ({"count": 2**64}, "count", "64-bit"),
        ({"flag": 1}, "flag", "expected a boolean, got number"),
        ({"extra": 1}, "extra", "unknown field"),
    ],
)
def test_each_problem_names_row_field_and_what_is_wrong(
    change: dict[str, Any], field: str, text: str
) -> None:
    found = problems([ROW, {**ROW, **change}])
    assert len(found) == 1
    row, name, problem = found[0]
    assert (row, name) == (1, field)
    assert text in problem


def test_whole_floats_are_accepted_for_int_columns() -> None:
    assert SCHEMA.columns_from_records([{**ROW, "count": 3.0}])["count"].tolist() == [3]


def test_problems_are_capped_and_long_values_are_not_echoed() -> None:
    found = problems([{**ROW, "color": "x" * 10_000}] * 50)
    assert len(found) == 10
    assert all(len(problem) < 200 for _, _, problem in found)
    long_name = problems([{**ROW, "y" * 10_000: 1}])
    assert len(long_name[0][1] or "") <= 64


def _rows(batch: Batch) -> list[dict[str, Any]]:
    plain = {name: values.tolist() for name, values in batch.items()}
    count = len(next(iter(plain.values())))
    return [{name: plain[name][i] for name in plain} for i in range(count)]


def test_request_body_shapes() -> None:
    assert _rows(SCHEMA.validate(batch_from_body(ROW, SCHEMA, 10))) == [ROW]
    assert _rows(SCHEMA.validate(batch_from_body([ROW, ROW], SCHEMA, 10))) == [ROW, ROW]
    with pytest.raises(InputError, match="got 0 rows"):
        batch_from_body([], SCHEMA, 10)
    with pytest.raises(InputError, match="too many rows") as caught:
        batch_from_body([ROW] * 11, SCHEMA, 10)
    assert caught.value.status == 413
    with pytest.raises(InputError, match="got string"):
        batch_from_body("row", SCHEMA, 10)


def test_mlflow_invocation_formats_all_give_the_same_rows() -> None:
    names = list(ROW)
    forms = [
        {"dataframe_split": {"columns": names, "data": [list(ROW.values())]}},
        {"dataframe_split": {"columns": names, "data": [list(ROW.values())], "index": [0]}},
        {"dataframe_records": [ROW]},
        {"inputs": [ROW]},
        {"instances": [ROW]},
        {"inputs": {name: [value] for name, value in ROW.items()}},
    ]
    for form in forms:
        assert _rows(SCHEMA.validate(batch_from_invocation(form, SCHEMA, 10))) == [ROW], form


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ([ROW], "expected a JSON object"),
        ({}, "exactly one of the keys"),
        ({"inputs": [ROW], "dataframe_records": [ROW]}, "exactly one"),
        ({"inputs": [ROW], "junk": 1}, "unknown key(s): junk"),
        ({"dataframe_split": []}, "expected an object"),
        ({"dataframe_split": {"columns": "a", "data": []}}, "columns"),
        ({"dataframe_split": {"columns": ["a"], "data": 3}}, "data"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "expected an array of 1"),
        ({"inputs": {"a": [1], "b": [1, 2]}}, "equally long"),
        ({"dataframe_records": {"a": 1}}, "expected an array"),
    ],
)
def test_malformed_invocations_are_client_errors(payload: Any, text: str) -> None:
    with pytest.raises(InputError) as caught:
        SCHEMA.validate(batch_from_invocation(payload, SCHEMA, 10))
    assert caught.value.status in (400, 422)
    assert text in caught.value.message


def test_example_rows_are_valid_and_deterministic() -> None:
    rows = SCHEMA.example_rows(30, seed=5)
    assert rows == SCHEMA.example_rows(30, seed=5)
    SCHEMA.columns_from_records(rows)


def test_openapi_document_uses_the_schema() -> None:
    document = openapi_document(SCHEMA, 100)
    row = document["components"]["schemas"]["Row"]
    assert row["properties"]["color"] == {"enum": ["red", "blue"]}
    assert row["properties"]["count"]["type"] == ["integer", "null"]
    assert row["required"] == ["color", "size", "flag"]
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["oneOf"][1]["maxItems"] == 100
    json.dumps(document)  # serializable


def _prediction(n: int) -> Prediction:
    probabilities = np.tile([[0.25, 0.75]], (n, 1))
    return Prediction(np.ones(n, dtype=int), probabilities, probabilities[:, 1])


def test_prediction_log_samples_rotates_and_reads_back(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, sample_rate=1.0, max_bytes=2000, backups=2)
    columns = SCHEMA.columns_from_records([ROW] * 5)
    for _ in range(20):
        log.submit({"model_version": "3"}, columns, _prediction(5), "req-1", "p1")
    log.close()
    files = prediction_log_files(tmp_path)
    assert [f.name for f in files] == [
        "predictions.jsonl.2",
        "predictions.jsonl.1",
        "predictions.jsonl",
    ]
    assert all(f.stat().st_size <= 2000 for f in files)
    records = list(read_log(tmp_path))
    assert 0 < len(records) < 100  # the oldest rotated away
    assert records[-1] == {
        "ts": records[-1]["ts"],
        "model_version": "3",
        "request_id": "req-1",
        "row_id": "p1-4",
        "input": ROW,
        "prediction": 1,
        "probabilities": [0.25, 0.75],
    }


def test_prediction_log_drops_instead_of_growing(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, sample_rate=0.0, queue_size=2)
    assert not any(log.sampled() for _ in range(100))
    columns = SCHEMA.columns_from_records([ROW])
    accepted = [log.submit({}, columns, _prediction(1), "r", "p") for _ in range(10_000)]
    assert log.dropped == accepted.count(False)
    log.close()
    with pytest.raises(ValueError, match="sample_rate"):
        PredictionLog(tmp_path, sample_rate=2.0)


_TEXT = st.text(st.characters(codec="utf-8"), max_size=6) | st.sampled_from(["a,b", 'q"}{', "\n"])


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.none() | _TEXT, min_size=1, max_size=12),
    duplicate=st.booleans(),
    classifier=st.booleans(),
    labels_as_text=st.booleans(),
    model=st.dictionaries(  # the model's fields (ServedModel.log_fields) beside the record's
        _TEXT.filter(
            lambda key: key
            not in ("row_id", "input", "prediction", "duplicate_request_id", "probabilities")
        ),
        _TEXT | st.integers(),
        max_size=3,
    ),
)
def test_prediction_log_lines_equal_the_per_row_records(
    texts: list[str | None],
    duplicate: bool,
    classifier: bool,
    labels_as_text: bool,
    model: dict[str, Any],
) -> None:
    """The per-batch writer's text is byte for byte what one json.dumps per row wrote: nulls,
    NaN, text with commas, quotes, braces and newlines, odd key names, both model kinds."""
    rows = len(texts)
    rng = np.random.default_rng(rows)
    floats = rng.normal(size=rows) * 10.0 ** rng.integers(-8, 8, size=rows)
    floats[::3] = np.nan
    batch = {
        "color": np.array(texts, dtype=object),
        "size": floats,
        'od"d{}': np.where(np.arange(rows) % 2 == 0, np.nan, np.arange(rows, dtype=float)),
        "count": np.arange(rows, dtype="int64") - 3,
        "flag": np.arange(rows) % 2 == 0,
    }
    labels = np.array([t or "" for t in texts], dtype=object) if labels_as_text else floats
    probabilities = rng.dirichlet([1.0, 1.0, 1.0], size=rows) if classifier else None
    prediction = Prediction(labels, probabilities, floats)
    item = (1765000000.1234567, model, batch, prediction, ("req, 1", "a1b2", duplicate))
    log = PredictionLog.__new__(PredictionLog)  # _lines only: no writer thread
    assert log._lines(item) == per_row_lines(item)


def test_read_log_skips_a_torn_last_line(tmp_path: Path) -> None:
    (tmp_path / "predictions.jsonl").write_text('{"input": {"a": 1}}\n{"inp', encoding="utf-8")
    assert list(read_log(tmp_path)) == [{"input": {"a": 1}}]


@pytest.mark.parametrize(
    ("uri", "kind", "attrs"),
    [
        ("models:/m@champion", "registry", {"name": "m", "alias": "champion"}),
        ("models:/m/3", "registry", {"name": "m", "version": "3"}),
        ("runs:/abc", "run", {"run_id": "abc", "artifact_path": "model_file/model.skops"}),
        ("runs:/abc/model", "run", {"artifact_path": "model_file/model.skops"}),
        ("runs:/abc/x/y.skops", "run", {"artifact_path": "x/y.skops"}),
        ("models/model.skops", "file", {"path": Path("models/model.skops")}),
    ],
)
def test_model_uris_parse(uri: str, kind: str, attrs: dict[str, Any]) -> None:
    ref = model_source.parse(uri)
    assert ref.kind == kind
    for key, value in attrs.items():
        assert getattr(ref, key) == value


@pytest.mark.parametrize(
    "uri", ["models:/m", "models:/m/latest", "models:/@x", "runs:/", "s3://bucket/model.skops"]
)
def test_malformed_model_uris_are_refused(uri: str) -> None:
    with pytest.raises(ModelSourceError, match=r"expected|unsupported"):
        model_source.parse(uri)


def test_local_file_load_verifies_a_pinned_sha256(tmp_path: Path) -> None:
    from modelci.errors import ModelFileError

    path = tmp_path / "model.skops"
    path.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="does not match"):
        model_source.load(str(path), expected_sha256="0" * 64)
    with pytest.raises(ModelFileError, match="not a valid skops model file"):
        model_source.load(str(path))
    with pytest.raises(ModelFileError, match="model file not found"):
        model_source.load(str(tmp_path / "absent.skops"))


def test_read_metrics_keeps_numbers_only(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"a": 1, "b": 0.5, "c": "x", "d": true}', encoding="utf-8")
    assert model_source.read_metrics(path) == {"a": 1.0, "b": 0.5}
    assert model_source.read_metrics(tmp_path / "absent.json") == {}


# -- the ASGI app in process -------------------------------------------------------------


class StubPredictor:
    runtime = "stub"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.classes: list[Any] | None = [0, 1]

    def predict(self, columns: Batch) -> Prediction:
        if self.fail:
            raise ValueError("boom inside the model")
        return _prediction(len(columns["color"]))


def served(version: str = "1", fail: bool = False) -> ServedModel:
    info = ModelInfo(uri="models:/m@champion", kind="registry", sha256="ab" * 32, version=version)
    return ServedModel(info, SCHEMA, StubPredictor(fail), "stub runtime")


def call(app: ServingApp, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    import httpx

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, content=body, headers=headers)

    return asyncio.run(go())


JSON = {"content-type": "application/json"}


def test_app_predicts_with_the_stub() -> None:
    app = ServingApp(served())
    response = call(app, "POST", "/predict", json.dumps(ROW).encode(), **JSON)
    assert response.status_code == 200
    assert response.json() == {
        "predictions": [1],
        "probabilities": [[0.25, 0.75]],
        "classes": [0, 1],
        "model_version": "1",
        "model_sha256": "ab" * 32,
        "prediction_id": response.headers["x-prediction-id"],
    }


@pytest.mark.usefixtures("server_logs")
def test_a_failure_inside_the_model_is_a_500_without_details(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = ServingApp(served(fail=True))
    response = call(app, "POST", "/predict", json.dumps(ROW).encode(), **JSON)
    assert response.status_code == 500
    assert "boom" not in response.text
    assert "boom inside the model" in capsys.readouterr().err


def test_reload_swaps_the_model_and_a_failed_reload_keeps_the_old_one() -> None:
    versions = iter(["2"])

    def loader() -> ServedModel:
        version = next(versions, None)
        if version is None:
            raise RuntimeError("registry unreachable")
        return served(version)

    app = ServingApp(served("1"), Settings(admin_token=TOKEN, reload_interval=0), loader=loader)
    auth = {"authorization": "Bearer t"}
    response = call(app, "POST", "/admin/reload", **auth)
    assert response.status_code == 200
    assert response.json()["model"]["version"] == "2"
    response = call(app, "POST", "/admin/reload", **auth)
    assert response.status_code == 502
    assert "registry unreachable" in response.json()["message"]
    assert app.served.info.version == "2"


def test_reload_without_a_source_is_refused() -> None:
    app = ServingApp(served(), Settings(admin_token=TOKEN))
    response = call(app, "POST", "/admin/reload", authorization="Bearer t")
    assert response.status_code == 502
    assert "no model source" in response.json()["message"]


def test_admin_reloads_are_one_at_a_time_and_spaced_by_the_interval() -> None:
    """A bearer of the token cannot make the server reload back to back (each reload
    downloads, verifies and warms up a model): 429 with Retry-After instead."""
    release = threading.Event()
    loads: list[str] = []

    def loader() -> ServedModel:
        release.wait(timeout=30)
        loads.append("x")
        return served(str(len(loads) + 1))

    app = ServingApp(served("1"), Settings(admin_token=TOKEN, reload_interval=60), loader=loader)
    auth = {"authorization": "Bearer t"}

    async def concurrent() -> tuple[Any, Any]:
        import httpx

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = asyncio.ensure_future(client.post("/admin/reload", headers=auth))
            for _ in range(1000):  # bounded: until the first reload holds the lock
                if app._reload_lock is not None and app._reload_lock.locked():
                    break
                await asyncio.sleep(0.01)
            second = await client.post("/admin/reload", headers=auth)
            release.set()
            return await first, second

    first, second = asyncio.run(concurrent())
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["message"] == "a reload is running; retry in 60 s"
    assert second.headers["retry-after"] == "60"
    third = call(app, "POST", "/admin/reload", **auth)
    assert third.status_code == 429
    assert third.json()["error_code"] == "TOO_MANY_RELOADS"
    assert "less than 60 s ago" in third.json()["message"]
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert loads == ["x"]  # neither refused request loaded anything
    app._last_reload -= 60  # the interval has passed
    assert call(app, "POST", "/admin/reload", **auth).status_code == 200


def _detailed_model() -> ServedModel:
    info = ModelInfo(
        uri="runs:/0123abcd/model", kind="run", sha256="ab" * 32, version="3",
        run_id="0123abcd", git_commit="f" * 40, metrics={"accuracy": 0.8},
    )  # fmt: skip
    return ServedModel(info, SCHEMA, StubPredictor(), "stub runtime at /secret/path")


def test_model_tells_digests_and_schema_only_unless_configured_or_asked_with_the_token() -> None:
    public = {"version", "sha256", "onnx_sha256", "runtime", "classes", "inputs"}
    app = ServingApp(_detailed_model(), Settings(admin_token=TOKEN))
    body = call(app, "GET", "/model").json()
    assert set(body) == public
    assert "0123abcd" not in json.dumps(body)
    assert "/secret/path" not in json.dumps(body)
    assert call(app, "GET", "/admin/model").status_code == 401
    full = call(app, "GET", "/admin/model", authorization="Bearer t").json()
    assert (full["run_id"], full["git_commit"], full["uri"]) == (
        "0123abcd",
        "f" * 40,
        "runs:/0123abcd/model",
    )
    assert full["metrics"] == {"accuracy": 0.8}
    assert full["runtime_note"] == "stub runtime at /secret/path"
    assert call(ServingApp(_detailed_model()), "GET", "/admin/model").status_code == 403
    configured = ServingApp(_detailed_model(), Settings(model_info="full"))
    assert call(configured, "GET", "/model").json() == full | {
        "loaded_at": configured.served.loaded_at
    }


def test_an_admin_listener_alone_serves_admin_and_metrics() -> None:
    """With ``admin_port`` the listener that accepted a request (its local port) decides: the
    public one answers 404 for /admin/* and /metrics, the admin one serves only those."""
    app = ServingApp(_detailed_model(), Settings(admin_token=TOKEN, reload_interval=0),
                     loader=_detailed_model, admin_port=9001)  # fmt: skip
    auth = {"authorization": "Bearer t"}
    admin = "http://test:9001"
    for path in ("/metrics", "/admin/model"):
        assert call(app, "GET", path, **auth).status_code == 404, path
        assert call(app, "GET", admin + path, **auth).status_code == 200, path
    assert call(app, "POST", "/admin/reload", **auth).status_code == 404
    assert call(app, "POST", admin + "/admin/reload", **auth).status_code == 200
    for path in ("/health", "/model", "/openapi.json", "/v2/models/model"):
        assert call(app, "GET", path).status_code == 200, path
        assert call(app, "GET", admin + path).status_code == 404, path
    assert call(app, "POST", "/predict", json.dumps(ROW).encode(), **JSON).status_code == 200
    assert "/metrics" not in call(app, "GET", "/openapi.json").json()["paths"]
    # without an admin listener every endpoint is on the one listener
    assert call(ServingApp(_detailed_model()), "GET", "/metrics").status_code == 200


def test_ready_is_503_while_draining() -> None:
    app = ServingApp(served())
    assert call(app, "GET", "/ready").status_code == 200
    app.draining = True
    assert call(app, "GET", "/ready").status_code == 503
    assert call(app, "GET", "/health").status_code == 200


# -- `modelci serve` refuses bad options before loading anything ----------------------------


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["--model", "models:/m/latest"], 1, "expected models:/NAME@ALIAS or models:/NAME/VERSION"),
        (["--model", "s3://bucket/m.skops"], 1, "unsupported model URI"),
        (["--model", "m.skops", "--max-rows", "0"], 2, "--max-rows must be at least 1"),
        (["--model", "m.skops", "--log-sample-rate", "2"], 2, "--log-sample-rate must be between"),
        (["--model", "absent.skops"], 1, "absent.skops: model file not found"),
        (["--params", "absent.yaml"], 2, "absent.yaml: parameters file not found"),
    ],
)
def test_serve_option_errors(
    args: list[str],
    code: int,
    text: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelci.cli import main
    from tests.conftest import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    assert main(["serve", *args]) == code
    err = capsys.readouterr().err
    assert text in err
    assert "Traceback" not in err


def test_a_malformed_environment_default_is_a_usage_error_of_serve_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelci.cli import build_parser, main

    monkeypatch.setenv("MODELCI_PORT", "eighty")
    monkeypatch.setenv("MODELCI_LOG_SAMPLE_RATE", "some")
    build_parser()  # other commands are unaffected
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", "m.skops", "--log-sample-rate", "0.5"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port: invalid int value: 'eighty'" in err
    assert "Traceback" not in err
    monkeypatch.setenv("MODELCI_PORT", "9090")
    args = build_parser().parse_args(["serve", "--log-sample-rate", "0.5"])
    assert (args.port, args.log_sample_rate, args.max_rows) == (9090, 0.5, defaults.MAX_ROWS)


def test_serve_fails_fast_when_the_tracking_server_is_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelci.cli import main
    from tests.conftest import REPO_ROOT
    from tests.process_support import free_port

    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    assert main(["serve", "--model", "models:/m@champion"]) == 1
    assert "is unreachable" in capsys.readouterr().err


def test_a_model_trained_on_other_columns_is_refused() -> None:
    from modelci.serving.runtime import RuntimeUnavailableError, build_predictor, check_columns

    class Trained:
        feature_names_in_ = np.array(["color", "size", "count", "flag"], dtype=object)

    check_columns(Trained(), SCHEMA)
    Trained.feature_names_in_ = np.array(["color", "size", "weight"], dtype=object)
    with pytest.raises(RuntimeUnavailableError, match=r"trained on columns \['color'"):
        build_predictor(Trained(), SCHEMA)


# -- property: no JSON value makes validation raise anything but InputError ----------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["red", "blue", "color", "size", "count", "flag"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["color", "size", "count", "flag", "extra", "columns", "data"]),
        children,
        max_size=5,
    ),
    max_leaves=20,
)
ROWISH = st.dictionaries(
    st.sampled_from(["color", "size", "count", "flag", "other"]), JSON_VALUES, max_size=5
)


# 100 examples (hypothesis's default; it was 300): drawing these recursive values, not the
# parsers, was about 90% of the time (6 s of CPU at 300), and each example already goes through both
# parsers; the strategies, and so the kinds of payload covered, are unchanged.
@settings(max_examples=100, deadline=None)
@given(payload=JSON_VALUES | st.lists(ROWISH, max_size=5) | ROWISH)
def test_any_json_is_either_valid_rows_or_an_input_error(payload: Any) -> None:
    for parse in (batch_from_body, batch_from_invocation):
        outcome = _validate(parse, payload)
        if isinstance(outcome, InputError):
            assert 400 <= outcome.status < 500
            assert len(outcome.message) < 1000
            continue
        rows, columns = outcome
        assert set(columns) == set(SCHEMA.names)
        assert all(len(values) == len(rows) for values in columns.values())


def _validate(parse: Any, payload: Any) -> Any:
    try:
        raw: RawBatch = parse(payload, SCHEMA, 10)
        return range(raw.rows), SCHEMA.validate(raw)
    except InputError as error:
        return error


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "color": st.sampled_from(["red", "blue"]),
                "size": st.floats(min_value=0, max_value=10),
                "count": st.none() | st.integers(-(2**63) + 1, 2**63 - 1),
                "flag": st.booleans(),
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_rows_valid_by_the_openapi_schema_are_accepted(rows: list[dict[str, Any]]) -> None:
    columns = SCHEMA.columns_from_records(rows)
    assert columns["color"].tolist() == [row["color"] for row in rows]

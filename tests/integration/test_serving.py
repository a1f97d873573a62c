"""``modelci serve`` as a real process on 127.0.0.1, serving the pipeline's models/model.skops."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelci.serving.predlog import read_inputs, read_log
from tests.conftest import tool_env
from tests.integration.conftest import serve_fails, start_serve
from tests.process_support import ServerProcess, http_get

pytestmark = pytest.mark.integration

ROW = {
    "gender": "male",
    "age": 30.0,
    "class": "3rd",
    "embarked": "Cherbourg",
    "fare": 7.17,
    "sibsp": 0,
    "parch": 0,
}
COLUMNS = list(ROW)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        all_headers = dict(headers or {})
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post_json(port: int, path: str, payload: Any) -> tuple[int, Any]:
    status, _, body = request(port, "POST", path, json.dumps(payload).encode())
    return status, json.loads(body)


@pytest.fixture(scope="module")
def served(
    pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Path]]:
    log_dir = tmp_path_factory.mktemp("predictions")
    server = start_serve(
        pipeline_repo,
        "--model",
        "models/model.skops",
        "--prediction-log",
        str(log_dir),
        "--log-sample-rate",
        "1",
        "--max-rows",
        "100",
        "--max-body-bytes",
        "65536",
    )
    yield server, log_dir
    assert server.stop() == 0, server.output()
    server.cleanup()


@pytest.fixture
def port(served: tuple[ServerProcess, Path]) -> int:
    return served[0].port


def test_health_ready_and_model(port: int, pipeline_repo: Path) -> None:
    assert http_get(port, "/health") == (200, b'{"status":"ok"}')
    status, body = http_get(port, "/ready")
    ready = json.loads(body)
    assert status == 200
    assert ready["status"] == "ready"
    assert ready["runtime"] in ("onnx", "sklearn")
    status, body = http_get(port, "/model")
    model = json.loads(body)
    import hashlib

    expected = hashlib.sha256((pipeline_repo / "models/model.skops").read_bytes()).hexdigest()
    assert status == 200
    assert model["sha256"] == expected
    assert [column["name"] for column in model["inputs"]] == COLUMNS
    # the default tells no source, metrics or commit (--model-info full, or GET /admin/model)
    assert not {"source", "uri", "metrics", "git_commit", "run_id"} & set(model)


def test_predict_one_row_and_many(port: int, pipeline_repo: Path) -> None:
    import pandas as pd

    from modelci.modelfile import load_model

    status, one = post_json(port, "/predict", ROW)
    assert status == 200
    assert one["classes"] == [0, 1]
    assert len(one["predictions"]) == 1
    assert sum(one["probabilities"][0]) == pytest.approx(1.0, abs=1e-5)

    test = pd.read_parquet(pipeline_repo / "data/prepared/test.parquet").head(50)
    rows = test[COLUMNS].to_dict(orient="records")
    status, many = post_json(port, "/predict", rows)
    assert status == 200
    model = load_model(pipeline_repo / "models/model.skops")
    expected = model.predict_proba(test[COLUMNS])
    assert many["predictions"] == model.predict(test[COLUMNS]).tolist()
    for got, want in zip(many["probabilities"], expected.tolist(), strict=True):
        assert got == pytest.approx(want, abs=1e-4)


def test_invocations_speaks_the_mlflow_protocol(port: int) -> None:
    split = {"dataframe_split": {"columns": COLUMNS, "data": [list(ROW.values())] * 2}}
    records = {"dataframe_records": [ROW, ROW]}
    inputs = {"inputs": [ROW, ROW]}
    columnar = {"inputs": {name: [value, value] for name, value in ROW.items()}}
    answers = [post_json(port, "/invocations", body) for body in (split, records, inputs, columnar)]
    assert all(status == 200 for status, _ in answers)
    predictions = [body["predictions"] for _, body in answers]
    assert all(p == predictions[0] and len(p) == 2 for p in predictions)
    assert set(answers[0][1]) == {"predictions"}


def test_openapi_request_schema_comes_from_the_model(port: int) -> None:
    status, body = http_get(port, "/openapi.json")
    document = json.loads(body)
    assert status == 200
    row = document["components"]["schemas"]["Row"]
    assert list(row["properties"]) == COLUMNS
    assert row["properties"]["gender"] == {"enum": ["female", "male"]}
    assert row["properties"]["age"] == {"type": "number", "minimum": 0.0, "maximum": 100.0}
    assert row["additionalProperties"] is False
    assert set(document["paths"]) >= {"/predict", "/invocations", "/health", "/ready", "/model"}


def test_triton_client_speaks_the_open_inference_protocol(port: int, pipeline_repo: Path) -> None:
    """Triton's own HTTP client (a real v2 implementation's types, not ours) against the v2
    routes: health, metadata, inference one tensor per column and as one [rows, columns] tensor,
    with the predictions and error messages of /predict."""
    import numpy as np
    import pandas as pd

    http = pytest.importorskip("tritonclient.http", reason="tritonclient[http]: make install")
    from tritonclient.utils import InferenceServerException, triton_to_np_dtype

    client = http.InferenceServerClient(url=f"127.0.0.1:{port}", connection_timeout=30)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.get_server_metadata()["name"] == "modelci"
        assert client.is_model_ready("model")  # the served file's name: models/model.skops
        metadata = client.get_model_metadata("model")
        assert [tensor["name"] for tensor in metadata["inputs"]] == COLUMNS
        test = pd.read_parquet(pipeline_repo / "data/prepared/test.parquet").head(20)
        rows = test[COLUMNS].to_dict(orient="records")
        _, expected = post_json(port, "/predict", rows)

        def tensor(name: str, datatype: str, values: Any) -> Any:
            dtype = triton_to_np_dtype(datatype)
            item = http.InferInput(name, list(np.shape(values)), datatype)
            item.set_data_from_numpy(np.asarray(values, dtype=dtype), binary_data=False)
            return item

        columns = [
            tensor(t["name"], t["datatype"], [row[t["name"]] for row in rows])
            for t in metadata["inputs"]
        ]
        wanted = [
            http.InferRequestedOutput(n, binary_data=False) for n in ("predict", "predict_proba")
        ]
        result = client.infer("model", columns, outputs=wanted, request_id="r-1")
        assert result.get_response()["id"] == "r-1"
        assert result.as_numpy("predict").tolist() == expected["predictions"]
        np.testing.assert_allclose(result.as_numpy("predict_proba"), expected["probabilities"])
        # one [rows, columns] tensor of text, as the client sends a table of mixed types
        table = tensor("rows", "BYTES", [[str(row[name]) for name in COLUMNS] for row in rows])
        # no outputs named: the client asks for binary outputs, and reads the JSON ones given
        assert (
            client.infer("model", [table]).as_numpy("predict").tolist() == expected["predictions"]
        )

        bad = [{**row, "age": -1.0} if i == 3 else row for i, row in enumerate(rows)]
        _, refused = post_json(port, "/predict", bad)
        age = next(i for i, t in enumerate(metadata["inputs"]) if t["name"] == "age")
        columns[age] = tensor("age", "FP64", [row["age"] for row in bad])
        with pytest.raises(InferenceServerException) as caught:
            client.infer("model", columns)
        assert caught.value.message() == refused["message"]
        binary = http.InferInput("age", [len(rows)], "FP64")
        binary.set_data_from_numpy(np.asarray([row["age"] for row in rows]))  # binary by default
        with pytest.raises(InferenceServerException, match="binary tensor data"):
            client.infer("model", [binary])
    finally:
        client.close()


def test_metrics_count_requests_errors_latency_and_predictions(port: int) -> None:
    post_json(port, "/predict", ROW)
    post_json(port, "/predict", {"nope": 1})
    status, body = http_get(port, "/metrics")
    text = body.decode()
    assert status == 200
    assert 'modelci_http_requests_total{method="POST",path="/predict",status="200"}' in text
    assert 'modelci_http_errors_total{error_code="INVALID_PARAMETER_VALUE"' in text
    assert 'modelci_http_request_duration_seconds_bucket{le="0.001",path="/predict"}' in text
    assert "modelci_prediction_score_bucket" in text
    assert 'modelci_predictions_total{label="0"}' in text or 'label="1"' in text
    assert "modelci_model_info{" in text


def _big_row(size: int) -> bytes:
    return json.dumps({**ROW, "x" * size: 1}).encode()


BAD_REQUESTS: list[tuple[str, str, bytes, str | None, int, str | None]] = [
    # (id, path, body, content type, expected status, field named in the problems)
    ("malformed-json", "/predict", b'{"gender": "male",', "application/json", 400, None),
    ("not-utf8", "/predict", b'{"gender": "\xff\xfe"}', "application/json", 400, None),
    ("empty-body", "/predict", b"", "application/json", 400, None),
    ("wrong-content-type", "/predict", json.dumps(ROW).encode(), "text/plain", 415, None),
    ("no-content-type", "/predict", json.dumps(ROW).encode(), None, 415, None),
    ("form-content-type", "/invocations", b"a=1", "application/x-www-form-urlencoded", 415, None),
    ("scalar-body", "/predict", b"42", "application/json", 400, None),
    (
        "null-value",
        "/predict",
        json.dumps({**ROW, "age": None}).encode(),
        "application/json",
        422,
        "age",
    ),
    (
        "absent-column",
        "/predict",
        json.dumps({k: v for k, v in ROW.items() if k != "fare"}).encode(),
        "application/json",
        422,
        "fare",
    ),
    (
        "extra-column",
        "/predict",
        json.dumps({**ROW, "cabin": "C85"}).encode(),
        "application/json",
        422,
        "cabin",
    ),
    (
        "wrong-type-number",
        "/predict",
        json.dumps({**ROW, "age": "thirty"}).encode(),
        "application/json",
        422,
        "age",
    ),
    (
        "wrong-type-int",
        "/predict",
        json.dumps({**ROW, "sibsp": 1.5}).encode(),
        "application/json",
        422,
        "sibsp",
    ),
    (
        "bool-for-int",
        "/predict",
        json.dumps({**ROW, "parch": True}).encode(),
        "application/json",
        422,
        "parch",
    ),
    (
        "unknown-category",
        "/predict",
        json.dumps({**ROW, "class": "4th"}).encode(),
        "application/json",
        422,
        "class",
    ),
    (
        "out-of-range",
        "/predict",
        json.dumps({**ROW, "fare": -1}).encode(),
        "application/json",
        422,
        "fare",
    ),
    (
        "huge-int",
        "/predict",
        json.dumps({**ROW, "sibsp": 10**30}).encode(),
        "application/json",
        422,
        "sibsp",
    ),
    (
        "nan",
        "/predict",
        json.dumps({**ROW, "age": float("nan")}).encode(),
        "application/json",
        400,
        None,
    ),
    (
        "infinity",
        "/predict",
        json.dumps({**ROW, "fare": float("inf")}).encode(),
        "application/json",
        400,
        None,
    ),
    (
        "nested-object",
        "/predict",
        json.dumps({**ROW, "age": {"v": 1}}).encode(),
        "application/json",
        422,
        "age",
    ),
    ("zero-rows", "/predict", b"[]", "application/json", 422, None),
    (
        "zero-rows-mlflow",
        "/invocations",
        b'{"dataframe_records": []}',
        "application/json",
        422,
        None,
    ),
    (
        "too-many-rows",
        "/predict",
        json.dumps([ROW] * 101).encode(),
        "application/json",
        413,
        None,
    ),
    (
        "body-over-limit",
        "/predict",
        json.dumps([ROW] * 1000).encode(),
        "application/json",
        413,
        None,
    ),
    ("row-not-object", "/predict", b"[1, 2]", "application/json", 422, None),
    # 2,000 levels: past orjson's depth limit, within the structure bound (4,904 here)
    ("deep-nesting", "/predict", b"[" * 2000 + b"]" * 2000, "application/json", 400, None),
    ("much-structure", "/predict", b"[" * 5000 + b"]" * 5000, "application/json", 413, None),
    (
        "mlflow-no-format-key",
        "/invocations",
        json.dumps({"rows": [ROW]}).encode(),
        "application/json",
        400,
        None,
    ),
    (
        "mlflow-two-format-keys",
        "/invocations",
        json.dumps({"inputs": [ROW], "dataframe_records": [ROW]}).encode(),
        "application/json",
        400,
        None,
    ),
    (
        "mlflow-split-ragged",
        "/invocations",
        json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2]]}}).encode(),
        "application/json",
        422,
        None,
    ),
    (
        "mlflow-split-bad-columns",
        "/invocations",
        json.dumps({"dataframe_split": {"columns": 3, "data": []}}).encode(),
        "application/json",
        400,
        None,
    ),
    ("long-field-name", "/predict", _big_row(50_000), "application/json", 422, None),
]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "expected", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_4xx_naming_the_problem_and_the_server_stays_healthy(
    port: int, path: str, body: bytes, content_type: str | None, expected: int, field: str | None
) -> None:
    status, headers, raw = request(port, "POST", path, body, content_type)
    assert status == expected, raw[:500]
    assert headers["content-type"] == "application/json"
    error = json.loads(raw)
    assert set(error) <= {"error_code", "message", "problems", "problem_count"}
    assert error["error_code"]
    assert error["message"]
    assert len(raw) < 4000, "the error must not echo large input"
    assert "Traceback" not in raw.decode("utf-8", "replace")
    if field is not None:
        assert field in {problem["field"] for problem in error["problems"]}, error
        assert field in error["message"]
    # still serving after each bad request
    assert post_json(port, "/predict", ROW)[0] == 200
    assert http_get(port, "/health")[0] == 200


def test_body_over_limit_is_refused_from_the_header_before_reading(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999\r\n\r\n{"
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")
    assert http_get(port, "/health")[0] == 200


def test_unknown_path_and_wrong_method(port: int) -> None:
    status, _, body = request(port, "GET", "/nope" + "x" * 5000)
    assert status == 404
    assert len(body) < 500
    status, headers, _ = request(port, "GET", "/predict")
    assert status == 405
    assert headers["allow"] == "POST"


def test_admin_reload_is_disabled_without_a_token(port: int) -> None:
    status, _, body = request(port, "POST", "/admin/reload", b"")
    assert status == 403
    assert "MODELCI_ADMIN_TOKEN" in json.loads(body)["message"]


def test_predictions_are_logged_for_drift_checks(served: tuple[ServerProcess, Path]) -> None:
    server, log_dir = served
    marker = 77.25
    assert post_json(server.port, "/predict", [{**ROW, "age": marker}] * 3)[0] == 200
    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = [r for r in read_log(log_dir) if r["input"]["age"] == marker]
        if len(records) == 3:
            break
        time.sleep(0.1)
    assert len(records) == 3
    assert records[0]["input"] == {**ROW, "age": marker}
    assert records[0]["prediction"] in (0, 1)
    assert len(records[0]["probabilities"]) == 2
    assert records[0]["model_sha256"]
    frame = read_inputs(log_dir)
    assert list(frame.columns[: len(COLUMNS)]) == COLUMNS


def test_fuzz_the_openapi_document_no_5xx(
    served: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    """Schema-driven fuzzing (valid and invalid bodies) of every operation, bounded in time."""
    server, _ = served
    document = json.loads(http_get(server.port, "/openapi.json")[1])
    assert "/v2/models/{name}/infer" in document["paths"]  # the v2 routes are fuzzed too
    operations = sum(len(methods) for methods in document["paths"].values())
    done = run_schemathesis(server.port, tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"Tested: {operations}\n" in done.stdout, done.stdout[-3000:]
    assert http_get(server.port, "/health")[0] == 200


def run_schemathesis(port: int, workdir: Path) -> Any:
    """Run the schemathesis CLI from ``workdir``, where it keeps its .schemathesis/ cache."""
    import subprocess

    return subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "25",
            "--max-time",
            "45",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=workdir,
        env=tool_env(SCHEMATHESIS_HOOKS="", NO_COLOR="1"),
    )


def wait_in_flight(port: int, count: int, timeout: float = 30.0) -> None:
    line = f"modelci_inflight_requests {float(count)}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in http_get(port, "/metrics")[1].decode():
            return
        time.sleep(0.05)
    raise AssertionError(f"no request in flight within {timeout} s")


def test_sigterm_drains_an_in_flight_request(pipeline_repo: Path) -> None:
    """A request whose body is still arriving when SIGTERM lands completes; then exit 0."""
    server = start_serve(pipeline_repo, "--model", "models/model.skops", "--runtime", "sklearn")
    try:
        body = json.dumps([ROW] * 20).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            wait_in_flight(server.port, 2)  # ours and the /metrics request asking
            server.signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.process.poll() is None, "exited with a request in flight"
            sock.sendall(body[10:])
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["predictions"].__len__() == 20
        assert server.process.wait(30) == 0, server.output()
        assert "draining" in server.output()
    finally:
        server.cleanup()


def test_json_log_lines_and_the_access_log(pipeline_repo: Path) -> None:
    """--log-format json: the server's records are JSON lines; --access-log adds one per request
    with its fields."""
    server = start_serve(
        pipeline_repo, "--model", "models/model.skops", "--log-format", "json", "--access-log"
    )
    try:
        assert post_json(server.port, "/predict", ROW)[0] == 200
        assert server.stop() == 0, server.output()
        output = server.output()
        entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert "modelci serve:" not in output  # no text line left
        started = [e for e in entries if e["logger"] == "modelci.serving.server"]
        assert "models/model.skops (version" in started[0]["message"], output
        assert any(e["message"] == "draining in-flight requests" for e in started), output
        access = [e for e in entries if e["logger"] == "uvicorn.access"]
        assert {"method": "POST", "path": "/predict", "status": 200}.items() <= next(
            e for e in access if e["path"] == "/predict"
        ).items()
    finally:
        server.cleanup()


def test_drain_period_turns_ready_off_but_keeps_serving(pipeline_repo: Path) -> None:
    server = start_serve(pipeline_repo, "--model", "models/model.skops", "--drain-seconds", "6")
    try:
        server.signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        status = 200
        while status == 200 and time.monotonic() < deadline:
            status = http_get(server.port, "/ready")[0]
        assert status == 503
        assert post_json(server.port, "/predict", ROW)[0] == 200
        assert server.process.wait(30) == 0
    finally:
        server.cleanup()


def test_missing_model_file_fails_fast_with_a_clear_message(pipeline_repo: Path) -> None:
    done = serve_fails(pipeline_repo, "--model", "models/absent.skops")
    assert done.returncode == 1
    assert "models/absent.skops: model file not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_pinned_sha256_mismatch_is_refused(pipeline_repo: Path) -> None:
    done = serve_fails(pipeline_repo, "--model", "models/model.skops", "--sha256", "0" * 64)
    assert done.returncode == 1
    assert "does not match" in done.stderr

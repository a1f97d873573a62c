"""XGBoost and LightGBM models end to end after training: ``modelci export`` converts and checks
them, ``modelci serve`` (a real process on 127.0.0.1) serves them with ONNX Runtime from that
export, and its predictions are the native model's."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.modelfile import save_model
from modelci.serving.runtime import PROBA_TOLERANCE
from tests.boosting_support import ESTIMATORS, fitted, require
from tests.conftest import run
from tests.integration.conftest import MODELCI, start_serve
from tests.process_support import http_get

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def post_json(port: int, path: str, payload: Any) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = json.dumps(payload).encode()
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_export_then_serve_predicts_as_the_native_model(tmp_path: Path, estimator: str) -> None:
    require(estimator)
    model, frame, data, train = fitted(estimator)
    params = {"data": data.model_dump(mode="json"), "train": train.model_dump(mode="json")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    save_model(model, tmp_path / "models" / "model.skops")

    exported = run([MODELCI, "export"], tmp_path)
    assert "matches scikit-learn" in exported.stdout, exported.stdout
    assert (tmp_path / "models" / "onnx" / "model.onnx").is_file()

    with start_serve(tmp_path, "--model", "models/model.skops", "--model-info", "full") as server:
        status, body = http_get(server.port, "/model")
        assert status == 200
        described = json.loads(body)
        assert described["runtime"] == "onnx", described["runtime_note"]
        assert "exported at build time" in described["runtime_note"]

        rows = frame[data.features].head(20)
        status, answer = post_json(server.port, "/predict", rows.to_dict(orient="records"))
        assert status == 200, answer
        if data.is_classification:
            assert answer["predictions"] == model.predict(rows).tolist()
            for got, want in zip(
                answer["probabilities"], model.predict_proba(rows).tolist(), strict=True
            ):
                assert got == pytest.approx(want, abs=PROBA_TOLERANCE)
        else:
            want = model.predict(rows).tolist()
            assert answer["predictions"] == pytest.approx(want, rel=PROBA_TOLERANCE)
        assert server.stop() == 0

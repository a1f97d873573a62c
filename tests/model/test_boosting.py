"""XGBoost and LightGBM through modelci's train stage: byte-identical model files, the skops round
trip with their closed list of trusted types, ONNX equivalence (onnxmltools' converters inside
skl2onnx), and the scikit-learn fallback when the converters are missing."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelci.modelfile import DEFAULT_TRUSTED_TYPES, dump_model, load_model_bytes
from modelci.serving.exported import read_export, write_export
from modelci.serving.runtime import (
    PROBA_TOLERANCE,
    OnnxPredictor,
    SklearnPredictor,
    build_predictor,
    json_classes,
)
from modelci.serving.schema import InputSchema
from tests.boosting_support import ESTIMATORS, fitted, require
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module", params=ESTIMATORS)
def case(request: pytest.FixtureRequest) -> tuple[str, Any, pd.DataFrame, Any]:
    estimator = str(request.param)
    require(estimator)
    model, frame, data, _ = fitted(estimator)
    return estimator, model, frame, data


def test_the_estimator_is_the_named_class_with_pinned_threads(case: Any) -> None:
    estimator, model, _, _ = case
    step = model.steps[-1][1]
    assert f"{type(step).__module__.split('.')[0]}.{type(step).__name__}" == estimator
    assert step.get_params()["n_jobs"] == 1
    assert step.get_params()["random_state"] == 7


def test_skops_round_trip_with_the_default_trusted_types(case: Any) -> None:
    import skops.io as sio

    _, model, frame, data = case
    data_bytes = dump_model(model)
    untrusted = set(sio.get_untrusted_types(data=data_bytes))
    # Every type skops does not trust is on modelci's closed list; nothing is trusted wholesale.
    assert untrusted <= set(DEFAULT_TRUSTED_TYPES)
    loaded = load_model_bytes(data_bytes, "model.skops")
    features = frame[data.features]
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))
    if data.is_classification:
        np.testing.assert_array_equal(loaded.predict_proba(features), model.predict_proba(features))
    assert dump_model(loaded) == data_bytes


def test_onnx_matches_the_native_model(case: Any) -> None:
    _, model, frame, data = case
    schema = InputSchema.from_params(data)
    predictor, note = build_predictor(model, schema, "auto")
    assert predictor.runtime == "onnx", note
    assert f"within {PROBA_TOLERANCE:g}" in note
    # On the real rows too, not only the check's synthetic ones.
    columns = schema.columns_from_records(frame[list(schema.names)].to_dict(orient="records"))
    got = predictor.predict(columns)
    reference = SklearnPredictor(model, schema).predict(columns)
    if data.is_classification:
        assert got.probabilities is not None
        assert reference.probabilities is not None
        assert np.max(np.abs(got.probabilities - reference.probabilities)) < PROBA_TOLERANCE
        assert got.labels.tolist() == reference.labels.tolist()
    else:
        scale = max(1.0, float(np.max(np.abs(reference.labels))))
        assert np.max(np.abs(got.labels - reference.labels)) < PROBA_TOLERANCE * scale


def test_the_export_is_byte_identical_and_verified(case: Any, tmp_path: Any) -> None:
    _, model, _, data = case
    schema = InputSchema.from_params(data)
    source = dump_model(model)
    write_export(tmp_path / "a", source, model, schema)
    write_export(tmp_path / "b", source, model, schema)
    first = (tmp_path / "a" / "model.onnx").read_bytes()
    assert first == (tmp_path / "b" / "model.onnx").read_bytes()
    export, why = read_export(tmp_path / "a", hashlib.sha256(source).hexdigest())
    assert export is not None, why
    assert export.classes == json_classes(model)
    OnnxPredictor(export.onnx, export.classes, schema)


def test_without_onnxmltools_serving_falls_back_to_scikit_learn(
    case: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model, _, data = case
    for name in [name for name in sys.modules if name.startswith("onnxmltools")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "onnxmltools", None)  # import raises ImportError
    predictor, note = build_predictor(model, InputSchema.from_params(data), "auto")
    assert predictor.runtime == "sklearn"
    assert "install the onnx extra" in note


def _digests_in_a_new_process() -> dict[str, str]:
    code = (
        "import hashlib, json\n"
        "from modelci.modelfile import dump_model\n"
        "from tests.boosting_support import ESTIMATORS, fitted\n"
        "print(json.dumps({e: hashlib.sha256(dump_model(fitted(e)[0])).hexdigest()"
        " for e in ESTIMATORS}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    import json

    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_model_files_are_byte_identical_run_to_run() -> None:
    """The same data, params and seed give the same bytes in this process twice and in a fresh
    process (where ids, hash seeds and thread pools differ)."""
    for estimator in ESTIMATORS:
        require(estimator)
    here = {
        estimator: hashlib.sha256(dump_model(fitted(estimator)[0])).hexdigest()
        for estimator in ESTIMATORS
    }
    again = {
        estimator: hashlib.sha256(dump_model(fitted(estimator)[0])).hexdigest()
        for estimator in ESTIMATORS
    }
    assert here == again
    assert _digests_in_a_new_process() == here

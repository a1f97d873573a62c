"""The ONNX Runtime predictor gives scikit-learn's predictions on the test set; models that do not
convert fall back to scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelci.config import Params
from modelci.serving.runtime import (
    BATCH_THREAD_ROWS,
    PROBA_TOLERANCE,
    OnnxPredictor,
    RuntimeUnavailableError,
    SklearnPredictor,
    build_predictor,
    convert_to_onnx,
    json_classes,
)
from modelci.serving.schema import InputSchema

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def schema(params: Params) -> InputSchema:
    return InputSchema.from_params(params.data)


@pytest.fixture(scope="module")
def test_columns(test_frame: pd.DataFrame, schema: InputSchema) -> dict[str, list[Any]]:
    rows = test_frame[list(schema.names)].to_dict(orient="records")
    return schema.columns_from_records(rows)


def test_onnx_matches_sklearn_on_the_test_set(
    model: Any, schema: InputSchema, test_frame: pd.DataFrame, test_columns: dict[str, list[Any]]
) -> None:
    onnx = OnnxPredictor(convert_to_onnx(model, schema), json_classes(model), schema)
    got = onnx.predict(test_columns)
    features = test_frame[list(schema.names)]
    expected_proba = model.predict_proba(features)
    assert got.probabilities is not None
    assert np.max(np.abs(got.probabilities - expected_proba)) < PROBA_TOLERANCE
    assert got.labels.tolist() == model.predict(features).tolist()
    assert onnx.classes == model.classes_.tolist()


def test_a_large_batch_is_scored_with_threads_and_the_same_predictions(
    model: Any, schema: InputSchema, test_columns: dict[str, Any]
) -> None:
    onnx_bytes = convert_to_onnx(model, schema)
    threaded = OnnxPredictor(onnx_bytes, json_classes(model), schema, batch_threads=2)
    single = OnnxPredictor(onnx_bytes, json_classes(model), schema)
    threaded.predict(test_columns)
    assert len(test_columns[schema.names[0]]) < BATCH_THREAD_ROWS
    assert threaded._wide is None  # a small batch: the single-threaded session only
    repeats = -(-BATCH_THREAD_ROWS // len(test_columns[schema.names[0]]))
    large = {name: np.tile(values, repeats) for name, values in test_columns.items()}
    got, expected = threaded.predict(large), single.predict(large)
    assert threaded._wide is not None
    assert got.labels.tolist() == expected.labels.tolist()
    assert got.probabilities is not None
    assert expected.probabilities is not None
    # the threads may add the trees' votes in another order: equal to rounding
    np.testing.assert_allclose(got.probabilities, expected.probabilities, rtol=0, atol=1e-6)


def test_sklearn_predictor_equals_the_model(
    model: Any, schema: InputSchema, test_frame: pd.DataFrame, test_columns: dict[str, list[Any]]
) -> None:
    got = SklearnPredictor(model, schema).predict(test_columns)
    features = test_frame[list(schema.names)]
    assert got.labels.tolist() == model.predict(features).tolist()
    assert got.probabilities is not None
    np.testing.assert_array_equal(got.probabilities, model.predict_proba(features))


def test_auto_picks_onnx_for_the_default_model(model: Any, schema: InputSchema) -> None:
    predictor, note = build_predictor(model, schema, "auto")
    assert predictor.runtime == "onnx"
    assert "matches scikit-learn" in note


def test_missing_values_reach_both_runtimes_alike(model: Any, params: Params) -> None:
    """With nullable columns, a null goes through the model's imputers in both runtimes."""
    data = params.data.model_copy(
        update={
            "columns": {
                name: spec.model_copy(update={"nullable": True})
                for name, spec in params.data.columns.items()
            }
        }
    )
    schema = InputSchema.from_params(data)
    rows = schema.example_rows(40, seed=3)
    for index, row in enumerate(rows):
        row[schema.names[index % len(schema.names)]] = None
    columns = schema.columns_from_records(rows)
    onnx = OnnxPredictor(convert_to_onnx(model, schema), json_classes(model), schema).predict(
        columns
    )
    reference = SklearnPredictor(model, schema).predict(columns)
    assert onnx.probabilities is not None
    assert reference.probabilities is not None
    assert np.max(np.abs(onnx.probabilities - reference.probabilities)) < PROBA_TOLERANCE


def test_a_model_that_does_not_convert_falls_back_to_sklearn(
    schema: InputSchema, train_frame: pd.DataFrame, params: Params
) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from modelci.pipeline.train import build_pipeline

    fitted = build_pipeline(params.data, params.train)
    # A FunctionTransformer with an arbitrary function has no ONNX converter.
    model = Pipeline(
        [
            ("identity", FunctionTransformer(lambda frame: frame, feature_names_out="one-to-one")),
            *fitted.steps,
        ]
    )
    model.fit(train_frame[list(schema.names)], train_frame[params.data.target])
    assert isinstance(model.steps[1][1], ColumnTransformer)
    with pytest.raises(RuntimeUnavailableError, match="skl2onnx cannot convert"):
        convert_to_onnx(model, schema)
    predictor, note = build_predictor(model, schema, "auto")
    assert predictor.runtime == "sklearn"
    assert "ONNX not used" in note
    with pytest.raises(RuntimeUnavailableError):
        build_predictor(model, schema, "onnx")


def _synthetic(task: str, estimator: str, seed: int = 0) -> tuple[Any, InputSchema]:
    from modelci.config import DataParams, TrainParams
    from modelci.pipeline.train import fit

    rng = np.random.default_rng(seed)
    n = 400
    frame = pd.DataFrame(
        {
            "x": rng.uniform(0, 10, n),
            "k": rng.integers(0, 5, n),
            "c": rng.choice(["a", "b", "c"], n),
        }
    )
    signal = frame["x"] + frame["k"] * 0.5 + frame["c"].map({"a": 0, "b": 2, "c": 4})
    if task == "regression":
        frame["y"] = signal + rng.normal(0, 0.1, n)
        target = {"type": "float"}
    else:
        frame["y"] = pd.cut(signal, 3, labels=False).astype("int64")
        target = {"type": "int", "min": 0, "max": 2}
    data = DataParams.model_validate(
        {
            "source": "synthetic.csv",
            "target": "y",
            "task": task,
            "columns": {
                "x": {"type": "float", "min": 0, "max": 10},
                "k": {"type": "int", "min": 0, "max": 4},
                "c": {"type": "category", "categories": ["a", "b", "c"]},
                "y": target,
            },
        }
    )
    model = fit(frame, data, TrainParams(estimator=estimator, seed=seed))
    return model, InputSchema.from_params(data)


@pytest.mark.parametrize(
    ("task", "estimator"),
    [
        ("regression", "sklearn.ensemble.HistGradientBoostingRegressor"),
        ("regression", "sklearn.linear_model.Ridge"),
        ("multiclass", "sklearn.ensemble.HistGradientBoostingClassifier"),
        ("multiclass", "sklearn.linear_model.LogisticRegression"),
    ],
)
def test_other_tasks_serve_the_same_predictions(task: str, estimator: str) -> None:
    model, schema = _synthetic(task, estimator)
    predictor, note = build_predictor(model, schema, "auto")
    columns = schema.columns_from_records(schema.example_rows(100, seed=9))
    reference = SklearnPredictor(model, schema).predict(columns)
    got = predictor.predict(columns)
    assert predictor.runtime == "onnx", note
    if task == "regression":
        assert got.probabilities is None
        np.testing.assert_allclose(got.labels, reference.labels, rtol=1e-4, atol=1e-4)
    else:
        assert got.probabilities is not None
        assert got.probabilities.shape == (100, 3)
        assert got.labels.tolist() == reference.labels.tolist()
        assert predictor.classes == [0, 1, 2]

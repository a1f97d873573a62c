"""Behavioural checks of the produced Titanic model (Made-With-ML style model tests).

Thresholds come from the gate in params.yaml; the invariance and directional cases use facts of
this dataset that any sensible model must respect ("women and children first", class).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelci.config import Params
from modelci.modelfile import dump_model
from modelci.pipeline import metrics as m
from modelci.pipeline.train import fit

pytestmark = pytest.mark.model


def survival(model: Any, rows: pd.DataFrame) -> list[float]:
    return [float(p) for p in model.predict_proba(rows)[:, 1]]


def person(**overrides: Any) -> pd.DataFrame:
    row = {
        "gender": "male",
        "age": 30.0,
        "class": "3rd",
        "embarked": "Southampton",
        "fare": 8.05,
        "sibsp": 0,
        "parch": 0,
    }
    row.update(overrides)
    return pd.DataFrame([row])


def test_metrics_meet_the_gate_thresholds(pipeline_repo: Path, params: Params) -> None:
    scores = json.loads((pipeline_repo / "metrics.json").read_text())
    assert params.gate.metrics, "params.yaml declares no gate thresholds"
    for name, rule in params.gate.metrics.items():
        value = scores[name]
        assert math.isfinite(value), name
        if rule.min is not None:
            assert value >= rule.min, f"{name}={value} below minimum {rule.min}"
        if rule.max is not None:
            assert value <= rule.max, f"{name}={value} above maximum {rule.max}"


def test_metrics_file_matches_the_model(
    pipeline_repo: Path, model: Any, test_frame: pd.DataFrame, params: Params
) -> None:
    pred = m.predict(model, test_frame[params.data.features], test_frame[params.data.target])
    recorded = json.loads((pipeline_repo / "metrics.json").read_text())
    assert m.compute_metrics(pred, params.data) == recorded


def test_invariance_to_tiny_fare_noise(model: Any, test_frame: pd.DataFrame) -> None:
    features = test_frame.drop(columns="survived")
    noisy = features.assign(fare=features["fare"] + 0.001)
    same = (model.predict(features) == model.predict(noisy)).mean()
    assert same >= 0.99


def test_invariance_to_port_of_embarkation_for_most_people(
    model: Any, test_frame: pd.DataFrame
) -> None:
    features = test_frame.drop(columns="survived")
    moved = features.assign(embarked="Southampton")
    assert (model.predict(features) == model.predict(moved)).mean() >= 0.9


@pytest.mark.parametrize("cls", ["1st", "2nd", "3rd"])
def test_directional_women_more_likely_to_survive(model: Any, cls: str) -> None:
    man, woman = survival(
        model, pd.concat([person(**{"class": cls}), person(gender="female", **{"class": cls})])
    )
    assert woman > man


def test_directional_first_class_beats_third(model: Any) -> None:
    first, third = survival(
        model,
        pd.concat(
            [person(gender="female", **{"class": "1st"}, fare=80.0), person(gender="female")]
        ),
    )
    assert first > third


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (dict(gender="female", age=25.0, fare=90.0, **{"class": "1st"}, embarked="Cherbourg"), 1),
        (dict(gender="female", age=8.0, fare=30.0, **{"class": "2nd"}, parch=2), 1),
        (dict(gender="male", age=35.0, fare=0.0, **{"class": "engineering crew"}), 0),
        (dict(gender="male", age=40.0, **{"class": "3rd"}), 0),
    ],
    ids=["first-class woman", "second-class girl", "male engineer", "third-class man"],
)
def test_minimum_functionality(model: Any, who: dict[str, Any], expected: int) -> None:
    assert int(model.predict(person(**who))[0]) == expected


def test_unseen_category_does_not_crash(model: Any) -> None:
    probability = survival(model, person(embarked="Atlantis"))[0]
    assert 0.0 <= probability <= 1.0


def test_retraining_with_the_same_seed_is_identical(
    pipeline_repo: Path, train_frame: pd.DataFrame, params: Params
) -> None:
    """Same data, params and seed give the same bytes, hence the same predictions and metrics."""
    first = dump_model(fit(train_frame, params.data, params.train))
    second = dump_model(fit(train_frame, params.data, params.train))
    assert first == second
    assert first == (pipeline_repo / "models/model.skops").read_bytes()


def test_labels_from_probabilities_equal_predict(
    model: Any, params: Params, test_frame: pd.DataFrame
) -> None:
    """Evaluate runs the model once and takes labels from the probabilities: they must be the
    labels the model's own ``predict`` gives (serving calls ``predict``)."""
    features = test_frame[params.data.features]
    pred = m.predict(model, features, test_frame[params.data.target])
    assert pred.proba is not None
    assert pred.y_pred.dtype == model.predict(features).dtype
    assert (pred.y_pred == model.predict(features)).all()
    assert set(pred.y_pred.tolist()) == set(model.classes_.tolist())  # both classes occur

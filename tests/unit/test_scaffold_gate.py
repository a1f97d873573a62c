"""The gate ``modelci init`` writes means "better than knowing nothing": the dummy model fails it,
a real model passes it, on real tables of each task (scikit-learn's bundled datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from modelci.config import parse_params
from modelci.judge import metrics as m
from modelci.judge.gate import evaluate_gate, parse_gate_rules
from modelci.pipeline.prepare import split
from modelci.pipeline.train import fit
from modelci.scaffold.init import Options, make_plan

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"

TABLES = {
    "binary": (load_breast_cancer, "sklearn.dummy.DummyClassifier"),
    "multiclass": (load_wine, "sklearn.dummy.DummyClassifier"),
    "regression": (load_diabetes, "sklearn.dummy.DummyRegressor"),
}


def scores(
    frame: pd.DataFrame, raw: dict[str, Any], estimator: str | None = None
) -> dict[str, float]:
    """The test split's metrics of the pipeline ``params.yaml`` trains (another estimator in it)."""
    if estimator is not None:
        raw = {**raw, "train": {**raw["train"], "estimator": estimator, "estimator_params": {}}}
    params = parse_params(raw)
    train, test = split(frame, params.data, params.prepare)
    model = fit(train, params.data, params.train)
    pred = m.predict(model, test[params.data.features], test[params.data.target])
    return m.compute_metrics(pred, params.data)


@pytest.mark.parametrize("task", sorted(TABLES))
def test_init_gate_fails_the_dummy_and_passes_a_real_model(tmp_path: Path, task: str) -> None:
    load, dummy = TABLES[task]
    frame = load(as_frame=True).frame
    data = tmp_path / "table.csv"
    frame.to_csv(data, index=False)
    plan = make_plan(
        Options(
            directory=tmp_path / "repo",
            data=data,
            target="target",
            task=task,
            workflows_ref=SHA,
            lock=False,
        )
    )
    text = plan.files["params.yaml"].decode()
    raw = yaml.safe_load(text)
    rules = parse_gate_rules(raw, "params.yaml")
    assert "knows nothing reaches by luck" in text

    knows_nothing = evaluate_gate(rules, scores(frame, raw, dummy), None)
    assert not knows_nothing.passed, f"the dummy {task} model passed init's gate"
    failed = {v.name for v in knows_nothing.metrics if not v.passed}
    assert failed & {"balanced_accuracy", "roc_auc", "f1_macro", "r2"}

    learned = evaluate_gate(rules, scores(frame, raw), None)
    assert learned.passed, [v.failures for v in learned.metrics if not v.passed]

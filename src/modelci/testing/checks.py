"""``ModelChecks``: the generic model tests, as a base class a test module subclasses.

``class TestModel(ModelChecks): pass`` runs them all; a subclass replaces one check by
defining a method of the same name, or turns it off with ``test_name = None``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelci.config import DataParams, MetricRule, ModelTestsParams
from modelci.errors import ConfigError, ModelFileError
from modelci.testing import cases
from modelci.testing.repo import ModelRepo

# Metric values are compared to the precision the evaluate stage writes (6 decimals).
METRICS_TOLERANCE = 1e-6


def fail_with(failures: list[str], what: str) -> None:
    if failures:
        pytest.fail(f"{len(failures)} {what} failed:\n" + "\n".join(failures), pytrace=False)


def recomputed_metrics(model: Any, test: pd.DataFrame, data: DataParams) -> dict[str, float]:
    from modelci.judge import metrics as m

    pred = m.predict(model, test[data.features], test[data.target])
    return m.compute_metrics(pred, data)


def with_untrusted_function(model_file: bytes) -> bytes:
    """The model file with ``os.system`` spliced in as the value of its first attribute."""
    import skops.io as sio

    from modelci.safezip import MODEL_BOUNDS, read_members

    entries = read_members(model_file, None, MODEL_BOUNDS)
    schema = json.loads(entries["schema.json"])
    state = schema.get("content")
    attributes = state.get("content") if isinstance(state, dict) else None
    if not isinstance(attributes, dict) or not attributes:
        pytest.skip("the model file's top object has no attribute to splice a type into")
    reference = read_members(sio.dumps({"f": os.system}), ["schema.json"])["schema.json"]
    function = json.loads(reference)["content"]["f"]
    attributes[next(iter(attributes))] = function
    entries["schema.json"] = json.dumps(schema).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


class ModelChecks:
    """The model tests every model repository gets; see docs/testing.md."""

    def test_params_are_valid(self, modelci_repo: ModelRepo) -> None:
        """The schema, the gate and the declared model tests load (runs before `dvc repro` too)."""
        try:
            data = modelci_repo.data()
            modelci_repo.gate()
            modelci_repo.model_tests()
            modelci_repo.trusted_types()
        except ConfigError as error:
            pytest.fail(str(error), pytrace=False)
        assert data.features, f"{modelci_repo.params}: data.columns declares no feature"

    def test_model_loads_through_the_safe_loader(
        self, modelci_model: Any, modelci_test_frame: pd.DataFrame, modelci_data: DataParams
    ) -> None:
        predictions = modelci_model.predict(modelci_test_frame[modelci_data.features].head(50))
        assert len(predictions) == min(50, len(modelci_test_frame))

    def test_untrusted_type_in_the_model_file_is_refused(
        self, modelci_model_file: Path, modelci_trusted_types: tuple[str, ...]
    ) -> None:
        """The real model with ``os.system`` spliced in, as an attacker would craft it."""
        from modelci.modelfile import load_model_bytes

        crafted = with_untrusted_function(modelci_model_file.read_bytes())
        with pytest.raises(ModelFileError, match=r"refusing to load untrusted type\(s\): .*system"):
            load_model_bytes(crafted, "crafted model file", modelci_trusted_types)

    def test_truncated_model_file_is_refused(self, modelci_model_file: Path) -> None:
        from modelci.modelfile import load_model_bytes

        data = modelci_model_file.read_bytes()
        with pytest.raises(ModelFileError, match="not a valid skops model file"):
            load_model_bytes(data[: len(data) // 2], "truncated model file")

    def test_gate_thresholds_hold_on_the_test_split(
        self,
        modelci_model: Any,
        modelci_test_frame: pd.DataFrame,
        modelci_data: DataParams,
        modelci_gate: dict[str, MetricRule],
    ) -> None:
        """The gate's absolute bounds, on metrics recomputed from the model and the test split."""
        from modelci.judge.gate import evaluate_gate

        if not modelci_gate:
            pytest.skip("the params file declares no gate.metrics thresholds")
        scores = recomputed_metrics(modelci_model, modelci_test_frame, modelci_data)
        fail_with(evaluate_gate(modelci_gate, scores, None).failures, "gate threshold(s)")

    def test_metrics_file_matches_the_model(
        self,
        modelci_model: Any,
        modelci_test_frame: pd.DataFrame,
        modelci_data: DataParams,
        modelci_metrics: dict[str, Any],
    ) -> None:
        """Every metric the file shares with modelci's equals its value recomputed from the model
        (metrics only your own stage computes are not compared)."""
        scores = recomputed_metrics(modelci_model, modelci_test_frame, modelci_data)
        shared = sorted(set(scores) & set(modelci_metrics))
        assert shared, (
            f"the metrics file has none of the metrics modelci computes ({', '.join(scores)}); "
            "override test_metrics_file_matches_the_model to compare yours"
        )
        recorded = {name: modelci_metrics[name] for name in shared}
        expected = {name: scores[name] for name in shared}
        assert recorded == pytest.approx(
            expected, rel=0, abs=METRICS_TOLERANCE
        ), "the metrics file does not match the model: run `dvc repro`"

    def test_retraining_gives_the_same_bytes(
        self,
        modelci_repo: ModelRepo,
        modelci_model_file: Path,
        modelci_train_frame: pd.DataFrame,
        modelci_data: DataParams,
    ) -> None:
        """Same data, params and seed give the same model file (modelci's own train stage)."""
        from modelci.modelfile import dump_model
        from modelci.pipeline.train import fit

        if not modelci_repo.uses_modelci_train():
            pytest.skip(f"{modelci_repo.pipeline} has no `modelci train` stage to retrain with")
        train = modelci_repo.train_params()
        first = dump_model(fit(modelci_train_frame, modelci_data, train))
        second = dump_model(fit(modelci_train_frame, modelci_data, train))
        assert first == second, "two fits with the same data, params and seed differ"
        assert (
            first == modelci_model_file.read_bytes()
        ), f"retraining does not reproduce {modelci_repo.model}: run `dvc repro`"

    def test_minimum_functionality(
        self, modelci_model: Any, modelci_model_tests: ModelTestsParams, modelci_data: DataParams
    ) -> None:
        if not modelci_model_tests.minimum_functionality:
            pytest.skip("no model_tests.minimum_functionality cases declared")
        failures = cases.run_minimum_functionality(modelci_model, modelci_model_tests, modelci_data)
        fail_with(failures, "minimum-functionality case(s)")

    def test_invariance(
        self,
        request: pytest.FixtureRequest,
        modelci_model: Any,
        modelci_model_tests: ModelTestsParams,
        modelci_data: DataParams,
    ) -> None:
        declared = modelci_model_tests.invariance
        if not declared:
            pytest.skip("no model_tests.invariance cases declared")
        needs_split = any(case.rows is None for case in declared)
        test = request.getfixturevalue("modelci_test_frame") if needs_split else None
        failures = cases.run_invariance(modelci_model, modelci_model_tests, modelci_data, test)
        fail_with(failures, "invariance case(s)")

    def test_directional(
        self, modelci_model: Any, modelci_model_tests: ModelTestsParams, modelci_data: DataParams
    ) -> None:
        if not modelci_model_tests.directional:
            pytest.skip("no model_tests.directional cases declared")
        failures = cases.run_directional(modelci_model, modelci_model_tests, modelci_data)
        fail_with(failures, "directional case(s)")

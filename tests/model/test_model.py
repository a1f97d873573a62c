"""This repository's model tests: the plugin's generic checks, with the behavioural cases
("women and children first", class, fare noise, port) declared in params.yaml ``model_tests:``,
plus what a declaration cannot say."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelci.config import DataParams
from modelci.testing import ModelChecks

pytestmark = pytest.mark.model


class TestTitanicModel(ModelChecks):
    """Every generic check of ``modelci.testing``, against ``pipeline_repo``."""


def test_unseen_categories_give_a_valid_prediction(
    modelci_model: Any, modelci_test_frame: pd.DataFrame, modelci_data: DataParams
) -> None:
    """A value outside a category column's declared categories (a new port, a new class) is
    ignored by the one-hot encoding instead of crashing the model."""
    categorical = [name for name in modelci_data.features if modelci_data.columns[name].categories]
    if not categorical:
        pytest.skip("the schema declares no category column")
    rows = modelci_test_frame[modelci_data.features].head(20)
    for column in categorical:
        unseen = rows.assign(**{column: "never-seen-before"})
        if modelci_data.is_classification:
            proba = modelci_model.predict_proba(unseen)
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, err_msg=column)
            assert ((proba >= 0) & (proba <= 1)).all(), column
        else:
            assert np.isfinite(modelci_model.predict(unseen)).all(), column


def test_labels_from_probabilities_equal_predict(
    modelci_model: Any, modelci_test_frame: pd.DataFrame, modelci_data: DataParams
) -> None:
    """Evaluate runs the model once and takes labels from the probabilities: they must be the
    labels the model's own ``predict`` gives (serving calls ``predict``)."""
    from modelci.judge import metrics as m

    if not modelci_data.is_classification:
        pytest.skip("a regressor has no probabilities to take labels from")

    features = modelci_test_frame[modelci_data.features]
    pred = m.predict(modelci_model, features, modelci_test_frame[modelci_data.target])
    assert pred.proba is not None
    assert pred.y_pred.dtype == modelci_model.predict(features).dtype
    assert (pred.y_pred == modelci_model.predict(features)).all()
    assert set(pred.y_pred.tolist()) == set(modelci_model.classes_.tolist())  # both classes occur

"""ONNX converters for XGBoost and LightGBM estimators inside a scikit-learn pipeline.

skl2onnx converts a pipeline step by looking its type up in its converter registry, which knows
no XGBoost or LightGBM class. onnxmltools has their converters and shape calculators;
:func:`register_boosting_converters` registers them with skl2onnx for each library the process has
loaded (a model holding one of their estimators has imported it), so ``convert_sklearn`` handles
the whole pipeline. Classifiers declare the ``zipmap`` option: modelci converts with
``zipmap=False`` (probabilities as a tensor).
"""

from __future__ import annotations

import sys
from typing import Any

LIBRARIES = ("xgboost", "lightgbm")
ML_OPSET = 3
_CLASSIFIER_OPTIONS: dict[str, Any] = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


def holds_boosting(model: Any) -> bool:
    """Whether ``model`` (an estimator or a pipeline) holds an XGBoost or LightGBM estimator."""
    nested = model.get_params(deep=True).values() if hasattr(model, "get_params") else ()
    return any(type(item).__module__.split(".", 1)[0] in LIBRARIES for item in [model, *nested])


def boosting_target_opset(model: Any) -> dict[str, int] | None:
    """The opsets to convert ``model`` with: onnxmltools' tree converters write ``ai.onnx.ml``
    opset :data:`ML_OPSET` at most, below skl2onnx's default; None (skl2onnx's default) for a
    model without XGBoost or LightGBM, whose ONNX bytes then stay as they were."""
    if not holds_boosting(model):
        return None
    from skl2onnx import get_latest_tested_opset_version

    return {"": get_latest_tested_opset_version(), "ai.onnx.ml": ML_OPSET}


def register_boosting_converters() -> None:
    """Register onnxmltools' converters with skl2onnx for XGBoost and LightGBM, if loaded;
    ImportError when skl2onnx or onnxmltools (the onnx extra) is missing."""
    loaded = [name for name in LIBRARIES if name in sys.modules]
    if not loaded:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    if "xgboost" in loaded:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=_CLASSIFIER_OPTIONS,
        )
        update_registered_converter(
            XGBRegressor,
            "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )
    if "lightgbm" in loaded:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (
            convert_lightgbm,
        )

        update_registered_converter(
            LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=_CLASSIFIER_OPTIONS,
        )
        update_registered_converter(
            LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
            options={"split": None},
        )

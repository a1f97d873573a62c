"""Prediction runtimes: scikit-learn (always) and ONNX Runtime (when the model converts).

``build_predictor(..., runtime="auto")`` converts the model with skl2onnx, runs both runtimes on
a few hundred rows spanning the input schema and uses ONNX Runtime only if its probabilities
match scikit-learn's within :data:`PROBA_TOLERANCE` and its labels agree; otherwise it keeps
scikit-learn and records why. Both take validated column-wise values in schema order.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from modelci.errors import ModelCIError
from modelci.serving.schema import Batch, InputSchema

Runtime = Literal["auto", "sklearn", "onnx"]
PROBA_TOLERANCE = 1e-4
CHECK_ROWS = 256
# From this many rows a batch may be scored with intra-op threads (OnnxPredictor.batch_threads);
# below it the single-threaded session is faster (waking pool threads costs more than it saves).
BATCH_THREAD_ROWS = 1_000


class RuntimeUnavailableError(ModelCIError):
    """The requested runtime cannot serve this model."""


@dataclass(frozen=True)
class Prediction:
    """Model output for a batch: labels (or values), class probabilities, and one score per row
    (positive-class probability for binary, top probability for multiclass, value for
    regression) for the prediction-distribution metrics."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    scores: np.ndarray


class Predictor(Protocol):
    runtime: str
    classes: list[Any] | None

    def predict(self, batch: Batch) -> Prediction: ...


def json_classes(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    return None if classes is None else np.asarray(classes).tolist()


def _scores(probabilities: np.ndarray | None, labels: np.ndarray) -> np.ndarray:
    if probabilities is None:
        return labels.astype("float64", copy=False).ravel()
    if probabilities.shape[1] == 2:
        return np.asarray(probabilities[:, 1])
    return np.asarray(probabilities.max(axis=1))


class SklearnPredictor:
    runtime = "sklearn"

    def __init__(self, model: Any, schema: InputSchema) -> None:
        self.model = model
        self.schema = schema
        self.classes = json_classes(model)
        self._proba = self.classes is not None and hasattr(model, "predict_proba")
        self._labels_from_proba = False
        if self._proba:
            # Most classifiers predict argmax(predict_proba); then one call gives both.
            frame = self.frame(schema.columns_from_records(schema.example_rows(64, seed=1)))
            derived = np.asarray(model.classes_)[np.argmax(model.predict_proba(frame), axis=1)]
            self._labels_from_proba = bool(np.array_equal(derived, model.predict(frame)))

    def frame(self, batch: Batch) -> Any:
        """The DataFrame the pipeline was fitted on; a null category becomes NaN (what
        scikit-learn's imputers look for in object columns)."""
        import pandas as pd

        data: dict[str, Any] = {}
        for spec in self.schema.fields:
            values = batch[spec.name]
            if values.dtype == object and spec.nullable:
                values = np.where(values == None, np.nan, values)  # noqa: E711 - elementwise
            data[spec.name] = values
        return pd.DataFrame(data, columns=list(self.schema.names))

    def predict(self, batch: Batch) -> Prediction:
        frame = self.frame(batch)
        if not self._proba:
            labels = np.asarray(self.model.predict(frame))
            return Prediction(labels, None, _scores(None, labels))
        probabilities = np.asarray(self.model.predict_proba(frame), dtype="float64")
        if self._labels_from_proba:
            labels = np.asarray(self.model.classes_)[np.argmax(probabilities, axis=1)]
        else:
            labels = np.asarray(self.model.predict(frame))
        return Prediction(labels, probabilities, _scores(probabilities, labels))


@contextlib.contextmanager
def _skl2onnx_bool_attributes() -> Iterator[None]:
    """skl2onnx 1.20 passes Python/NumPy booleans for ``nodes_missing_value_tracks_true`` of
    HistGradientBoosting trees, which onnx >= 1.17 rejects; give it the ints ONNX defines."""
    import skl2onnx.common.tree_ensemble as tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(
                kwargs["nodes_missing_value_tracks_true"]
            )
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _string_imputers_use_empty_string(model: Any) -> None:
    """skl2onnx imputes strings only when the missing marker is a string: ONNX inputs carry a
    missing category as "" (the schema refuses "" as a category value, see convert_to_onnx)."""
    from sklearn.impute import SimpleImputer

    def walk(node: Any) -> None:
        statistics = getattr(node, "statistics_", None)
        if (
            isinstance(node, SimpleImputer)
            and statistics is not None
            and statistics.dtype == object
        ):
            node.missing_values = ""
        for attribute in ("steps", "transformers_"):
            for item in getattr(node, attribute, None) or []:
                walk(item[1])

    walk(model)


def convert_to_onnx(model: Any, schema: InputSchema) -> bytes:
    """Convert a fitted scikit-learn pipeline (XGBoost and LightGBM steps too, through
    onnxmltools), or raise RuntimeUnavailableError saying why not."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import (
            BooleanTensorType,
            FloatTensorType,
            Int64TensorType,
            StringTensorType,
        )

        from modelci.serving.converters import (
            boosting_target_opset,
            register_boosting_converters,
        )

        register_boosting_converters()
    except ImportError as error:
        raise RuntimeUnavailableError(
            f"ONNX runtime unavailable ({error}); install the onnx extra"
        ) from None
    inputs: list[tuple[str, Any]] = []
    for spec in schema.fields:
        if spec.type == "category":
            if spec.categories and any(not isinstance(c, str) for c in spec.categories):
                raise RuntimeUnavailableError(f"column {spec.name!r}: non-string categories")
            if spec.categories and "" in spec.categories:
                raise RuntimeUnavailableError(
                    f"column {spec.name!r}: '' is a category (the missing marker)"
                )
            inputs.append((spec.name, StringTensorType([None, 1])))
        elif spec.type == "float" or (spec.type == "int" and spec.nullable):
            inputs.append((spec.name, FloatTensorType([None, 1])))
        elif spec.type == "int":
            inputs.append((spec.name, Int64TensorType([None, 1])))
        else:
            inputs.append((spec.name, BooleanTensorType([None, 1])))
    patched = copy.deepcopy(model)
    _string_imputers_use_empty_string(patched)
    options = {id(patched): {"zipmap": False}} if hasattr(patched, "predict_proba") else None
    try:
        with _skl2onnx_bool_attributes():
            # a fixed graph name (the default is a random uuid): the same model, the same bytes
            onx = convert_sklearn(
                patched,
                initial_types=inputs,
                options=options,
                name="modelci",
                target_opset=boosting_target_opset(patched),
            )
    except Exception as error:  # skl2onnx raises many types for unsupported models
        first = str(error).splitlines()[0][:200] if str(error) else ""
        raise RuntimeUnavailableError(
            f"skl2onnx cannot convert the model: {type(error).__name__}: {first}"
        ) from None
    # skl2onnx collects the opsets in a set: their order follows the string hash seed. Sorted by
    # domain, the same model gives the same bytes in every process.
    opsets = sorted(onx.opset_import, key=lambda opset: opset.domain)
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    return bytes(onx.SerializeToString())


class OnnxPredictor:
    runtime = "onnx"

    def __init__(
        self,
        onnx_bytes: bytes,
        classes: list[Any] | None,
        schema: InputSchema,
        batch_threads: int = 1,
    ) -> None:
        """``batch_threads`` above 1: a batch of :data:`BATCH_THREAD_ROWS` rows or more is
        scored by a second session with that many intra-op threads, when no other batch of this
        process is using it (see :meth:`predict`)."""
        try:
            import onnxruntime  # noqa: F401 - the extra's presence, checked before any work
        except ImportError:
            raise RuntimeUnavailableError(
                "onnxruntime is not installed (the onnx extra: modelci[onnx])"
            ) from None

        self._bytes = onnx_bytes
        self.session = self._session(1)
        self.batch_threads = batch_threads
        # Made on the first large batch, in the process that scores it: a forked worker has no
        # copy of its parent's threads, so a thread pool must not be created before the fork.
        self._wide: Any = None
        self._wide_free = threading.Lock()
        self.sha256 = hashlib.sha256(onnx_bytes).hexdigest()  # reported on /ready and /model
        self.schema = schema
        self.classes = classes
        kinds = {item.name: item.type for item in self.session.get_inputs()}
        if set(kinds) != set(schema.names):
            raise RuntimeUnavailableError(
                f"the ONNX model takes inputs {sorted(kinds)} but the input schema declares "
                f"{sorted(schema.names)}"
            )
        self._inputs = [(spec.name, kinds[spec.name]) for spec in schema.fields]
        self._outputs = [item.name for item in self.session.get_outputs()]

    def _session(self, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: they would burn the cores the other
        # workers' requests need between two large batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(self._bytes, options, providers=["CPUExecutionProvider"])

    def feed(self, batch: Batch) -> dict[str, np.ndarray]:
        feed: dict[str, np.ndarray] = {}
        for name, kind in self._inputs:
            values = batch[name]
            if kind == "tensor(string)":
                if values.dtype == object:
                    values = np.where(values == None, "", values)  # noqa: E711 - elementwise
                array = values
            elif kind == "tensor(float)":
                array = values.astype("float32")
            elif kind == "tensor(int64)":
                array = values.astype("int64", copy=False)
            else:
                array = values.astype("bool", copy=False)
            feed[name] = array.reshape(-1, 1)
        return feed

    def predict(self, batch: Batch) -> Prediction:
        """Score with the single-threaded session, or a large batch with the threaded one when
        it is free (one large batch at a time per process; another waits for no one and takes
        the single-threaded session)."""
        feed = self.feed(batch)
        rows = len(next(iter(feed.values()))) if feed else 0
        if (
            self.batch_threads > 1
            and rows >= BATCH_THREAD_ROWS
            and self._wide_free.acquire(blocking=False)
        ):
            try:
                if self._wide is None:
                    self._wide = self._session(self.batch_threads)
                outputs = self._wide.run(None, feed)
            finally:
                self._wide_free.release()
        else:
            outputs = self.session.run(None, feed)
        if self.classes is None:
            values = np.asarray(outputs[0], dtype="float64").ravel()
            return Prediction(values, None, values)
        labels = np.asarray(outputs[0]).ravel()
        probabilities = np.asarray(outputs[1], dtype="float64")
        return Prediction(labels, probabilities, _scores(probabilities, labels))


def compare(reference: Prediction, candidate: Prediction) -> str | None:
    """Why ``candidate`` disagrees with ``reference`` (None when it agrees)."""
    if reference.probabilities is not None:
        if candidate.probabilities is None:
            return "no probabilities"
        diff = float(np.max(np.abs(reference.probabilities - candidate.probabilities)))
        if diff > PROBA_TOLERANCE:
            return f"probabilities differ by up to {diff:.2e} (> {PROBA_TOLERANCE:g})"
        margin = np.sort(reference.probabilities, axis=1)
        clear = (margin[:, -1] - margin[:, -2]) > 2 * PROBA_TOLERANCE
        same = reference.labels.astype(str) == candidate.labels.astype(str)
        if not np.all(same[clear]):
            return f"{int(np.sum(~same[clear]))} label(s) differ"
        return None
    scale = max(1.0, float(np.max(np.abs(reference.labels.astype("float64")))))
    diff = float(np.max(np.abs(reference.labels.astype("float64") - candidate.labels)))
    if diff > PROBA_TOLERANCE * scale:
        return f"predictions differ by up to {diff:.2e}"
    return None


def check_columns(model: Any, schema: InputSchema) -> None:
    """Refuse a model trained on other columns than the schema declares (e.g. an image whose
    params.yaml predates the promoted model), instead of failing on every request."""
    trained = getattr(model, "feature_names_in_", None)
    if trained is None:
        return
    expected = [str(name) for name in trained]
    if expected != list(schema.names):
        raise RuntimeUnavailableError(
            f"the model was trained on columns {expected} but the input schema (params.yaml "
            f"data.columns without the target) declares {list(schema.names)}; serve it with the "
            "params.yaml it was trained with"
        )


def checked_onnx(model: Any, schema: InputSchema) -> tuple[bytes, str]:
    """Convert ``model`` and check ONNX Runtime against scikit-learn on :data:`CHECK_ROWS` rows
    spanning the schema: the ONNX bytes and a note, or RuntimeUnavailableError saying why not."""
    check_columns(model, schema)
    onnx_bytes = convert_to_onnx(model, schema)
    try:
        onnx_predictor = OnnxPredictor(onnx_bytes, json_classes(model), schema)
        batch = schema.columns_from_records(schema.example_rows(CHECK_ROWS, seed=2))
        problem = compare(
            SklearnPredictor(model, schema).predict(batch), onnx_predictor.predict(batch)
        )
    except RuntimeUnavailableError:
        raise
    except Exception as error:  # session and comparison failures alike
        raise RuntimeUnavailableError(f"ONNX Runtime cannot serve the model: {error}") from None
    if problem is not None:
        raise RuntimeUnavailableError(f"ONNX Runtime disagrees with scikit-learn: {problem}")
    return onnx_bytes, f"matches scikit-learn within {PROBA_TOLERANCE:g} on {CHECK_ROWS} rows"


def build_predictor(
    model: Any, schema: InputSchema, runtime: Runtime = "auto", batch_threads: int = 1
) -> tuple[Predictor, str]:
    """The predictor to serve with, and a note saying which runtime and why (converting and
    checking at start-up: the path taken when no build-time export matches the model)."""
    check_columns(model, schema)
    sklearn_predictor = SklearnPredictor(model, schema)
    if runtime == "sklearn":
        return sklearn_predictor, "scikit-learn (requested)"
    try:
        onnx_bytes, note = checked_onnx(model, schema)
    except RuntimeUnavailableError as error:
        if runtime == "onnx":
            raise
        reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        return sklearn_predictor, f"scikit-learn (ONNX not used: {reason})"
    onnx_predictor = OnnxPredictor(onnx_bytes, sklearn_predictor.classes, schema, batch_threads)
    return onnx_predictor, f"ONNX Runtime ({note})"

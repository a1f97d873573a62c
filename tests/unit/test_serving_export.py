"""The build-time ONNX export: written once, used only when it matches the model's bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from modelci.config import Column
from modelci.serving.exported import MANIFEST, ONNX_FILE, read_export, write_export
from modelci.serving.runtime import OnnxPredictor
from modelci.serving.schema import InputSchema

pytestmark = pytest.mark.unit

SCHEMA = InputSchema([Column("x", "float"), Column("color", "category", categories=("a", "b"))])


@pytest.fixture(scope="module")
def model() -> object:
    return fitted_model()


def fitted_model() -> object:
    """A small fitted pipeline of the schema's two columns (one-hot ``color``)."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "color": ["a", "b", "a", "b"]})
    features = ColumnTransformer(
        [("num", "passthrough", ["x"]), ("cat", OneHotEncoder(), ["color"])]
    )
    return Pipeline([("f", features), ("m", LogisticRegression())]).fit(frame, [0, 0, 1, 1])


SOURCE = b"the skops bytes"
SOURCE_SHA = hashlib.sha256(SOURCE).hexdigest()


def test_an_export_matching_the_model_is_served(tmp_path: Path, model: object) -> None:
    note = write_export(tmp_path, SOURCE, model, SCHEMA)
    assert "matches scikit-learn" in note
    export, why_not = read_export(tmp_path, SOURCE_SHA)
    assert export is not None, why_not
    assert export.classes == [0, 1]
    predictor = OnnxPredictor(export.onnx, export.classes, SCHEMA)
    batch = SCHEMA.columns_from_records([{"x": 3.0, "color": "b"}, {"x": 0.0, "color": "a"}])
    expected = np.asarray(model.predict_proba(_frame(batch)))  # type: ignore[attr-defined]
    assert np.allclose(predictor.predict(batch).probabilities, expected, atol=1e-4)


def _frame(batch: dict[str, np.ndarray]) -> object:
    import pandas as pd

    return pd.DataFrame(batch)


def test_an_export_of_another_model_or_a_tampered_file_is_not_used(
    tmp_path: Path, model: object
) -> None:
    write_export(tmp_path, SOURCE, model, SCHEMA)
    assert read_export(tmp_path, "0" * 64) == (
        None,
        "the build-time export was made from another model file",
    )
    (tmp_path / ONNX_FILE).write_bytes((tmp_path / ONNX_FILE).read_bytes() + b"x")
    export, why_not = read_export(tmp_path, SOURCE_SHA)
    assert export is None
    assert "does not match the sha256" in why_not
    (tmp_path / ONNX_FILE).unlink()
    assert read_export(tmp_path, SOURCE_SHA)[1] == f"the build-time export has no {ONNX_FILE}"
    (tmp_path / MANIFEST).write_text("{not json", encoding="utf-8")
    assert read_export(tmp_path, SOURCE_SHA) == (None, "no build-time export")


def test_a_model_that_does_not_convert_gets_a_manifest_saying_why(tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    unconvertible = DummyClassifier().fit([[0.0, 0.0]], [1])
    unconvertible.feature_names_in_ = np.array(["other", "names"], dtype=object)
    note = write_export(tmp_path, SOURCE, unconvertible, SCHEMA)
    assert note.startswith("no ONNX model: ")
    manifest = json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["onnx_sha256"] is None
    assert not (tmp_path / ONNX_FILE).exists()
    export, why_not = read_export(tmp_path, SOURCE_SHA)
    assert export is None
    assert why_not.startswith("build-time export: ")


def test_without_onnxruntime_an_export_falls_back_to_scikit_learn(
    tmp_path: Path, model: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image built without the onnx extra still carries the pipeline's export: the server
    says why it does not use it and serves with scikit-learn instead of failing to start."""
    import sys

    from modelci.serving.runtime import RuntimeUnavailableError, build_predictor

    write_export(tmp_path, SOURCE, model, SCHEMA)
    export, _ = read_export(tmp_path, SOURCE_SHA)
    assert export is not None
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(RuntimeUnavailableError, match="onnxruntime is not installed"):
        OnnxPredictor(export.onnx, export.classes, SCHEMA)
    predictor, note = build_predictor(model, SCHEMA, "auto")
    assert predictor.runtime == "sklearn"
    assert "onnxruntime is not installed" in note
    with pytest.raises(RuntimeUnavailableError):
        build_predictor(model, SCHEMA, "onnx")


def _lock(directory: Path, digest: str) -> Path:
    lock = directory / "dvc.lock"
    lock.write_text(
        "schema: '2.0'\nstages:\n  export:\n    cmd: modelci export\n    outs:\n"
        f"    - path: models/onnx\n      hash: md5\n      md5: {digest}\n",
        encoding="utf-8",
    )
    return lock


def test_a_release_pins_only_the_export_dvc_lock_records(
    tmp_path: Path, model: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19.4: editing ``model.onnx`` and rewriting its manifest's hash leaves a consistent
    export that nothing reviewed; dvc.lock's folder hash is what the pull request reviewed."""
    from modelci.dvcfiles import read_lock
    from modelci.fileio import dvc_dir_md5
    from modelci.registry.core import RegistryError
    from modelci.registry.register import export_pin

    monkeypatch.chdir(tmp_path)
    export = Path("models/onnx")
    write_export(export, SOURCE, model, SCHEMA)
    honest = hashlib.sha256((export / ONNX_FILE).read_bytes()).hexdigest()
    reviewed = dvc_dir_md5(export)
    lock = read_lock(_lock(tmp_path, reviewed))
    assert export_pin(export, SOURCE_SHA, lock) == honest
    assert export_pin(export, SOURCE_SHA, None) == honest  # no dvc.lock: the manifest alone

    edited = (export / ONNX_FILE).read_bytes() + b"\0"
    (export / ONNX_FILE).write_bytes(edited)
    manifest = json.loads((export / MANIFEST).read_text())
    manifest["onnx_sha256"] = hashlib.sha256(edited).hexdigest()
    (export / MANIFEST).write_text(json.dumps(manifest))
    assert read_export(export, SOURCE_SHA)[0] is not None  # consistent in itself
    with pytest.raises(RegistryError) as refused:
        export_pin(export, SOURCE_SHA, lock)
    message = str(refused.value)
    assert message.startswith("models/onnx: the ONNX export is not the one dvc.lock records")
    assert f"(DVC hash {dvc_dir_md5(export)}, dvc.lock {reviewed})" in message

"""Serving a verified build-time ONNX export needs none of scikit-learn, SciPy, pandas, skops,
skl2onnx or onnx (the serving image's default variant holds none of them), and without them a
model whose export does not verify stops the start, naming the image variant to build instead."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from modelci.serving.runtime import RuntimeUnavailableError
from modelci.serving.server import ServeConfig, load_served
from tests.conftest import VENV_BIN

pytestmark = pytest.mark.integration

# What the onnx variant of the image leaves out (module names).
FALLBACK_ONLY = ("sklearn", "scipy", "pandas", "skops", "skl2onnx", "onnx", "onnxmltools")


def _pinned(repo: Path, onnx_pin: bool) -> ServeConfig:
    models = repo / "models"
    if not (models / "onnx" / "model.onnx").is_file():
        pytest.skip(f"no ONNX export: {(models / 'onnx' / 'manifest.json').read_text('utf-8')}")
    digest = hashlib.sha256((models / "model.skops").read_bytes()).hexdigest()
    onnx = hashlib.sha256((models / "onnx" / "model.onnx").read_bytes()).hexdigest()
    return ServeConfig(
        str(models / "model.skops"),
        params_path=repo / "params.yaml",
        expected_sha256=digest,
        expected_onnx_sha256=onnx if onnx_pin else None,
    )


def test_serving_a_verified_export_imports_none_of_the_fallback(pipeline_repo: Path) -> None:
    config = _pinned(pipeline_repo, onnx_pin=True)
    # A fresh interpreter: this process has imported scikit-learn already.
    probe = f"""
import json, sys
from pathlib import Path
from modelci.serving.server import ServeConfig, build_app
uri, params, sha256, onnx_sha256 = sys.argv[1:]
app = build_app(ServeConfig(uri, params_path=Path(params), expected_sha256=sha256,
                            expected_onnx_sha256=onnx_sha256))
print(json.dumps([app.served.predictor.runtime,
                  sorted(m for m in {FALLBACK_ONLY!r} if m in sys.modules)]))
"""
    pins = [str(config.expected_sha256), str(config.expected_onnx_sha256)]
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", probe, config.model_uri, str(config.params_path), *pins],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == ["onnx", []]


def test_without_scikit_learn_an_unverified_export_stops_the_start(
    pipeline_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is pinned, its export is not: the export is not served, and with no
    scikit-learn to load the model itself the start stops with one line naming the variant."""
    monkeypatch.setitem(sys.modules, "sklearn", None)  # find_spec("sklearn") -> None
    with pytest.raises(RuntimeUnavailableError) as error:
        load_served(_pinned(pipeline_repo, onnx_pin=False))
    message = str(error.value)
    assert "\n" not in message
    assert "the build-time export is not pinned" in message
    assert "scikit-learn is not installed" in message
    assert "--build-arg SERVE_VARIANT=sklearn" in message

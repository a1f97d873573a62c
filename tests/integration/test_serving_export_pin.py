"""Issue 19.4: the build-time ONNX export is pinned by its own sha256. Editing ``model.onnx`` and
rewriting the manifest's hash made a server pinned to the reviewed skops file serve the edited
ONNX model; now a pinned export that differs stops the start, and an unpinned one is not served
by a server whose model is pinned."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from modelci.model_source import ModelSourceError
from modelci.serving.app import ServingApp
from modelci.serving.server import ServeConfig, load_served
from tests.unit.test_serving import call

pytestmark = pytest.mark.integration


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_tampered_export_with_a_rewritten_manifest_is_refused_at_start(
    pipeline_repo: Path, tmp_path: Path
) -> None:
    onnx = pytest.importorskip("onnx")
    models = tmp_path / "models"
    shutil.copytree(pipeline_repo / "models", models)
    export = models / "onnx"
    if not (export / "model.onnx").is_file():
        pytest.skip(f"no ONNX export: {(export / 'manifest.json').read_text(encoding='utf-8')}")
    honest_bytes = (export / "model.onnx").read_bytes()
    honest_manifest = (export / "manifest.json").read_text(encoding="utf-8")
    honest, reviewed = _sha(honest_bytes), _sha((models / "model.skops").read_bytes())

    # the attack: edit the export, then rewrite its hash in the manifest
    proto = onnx.load_from_string(honest_bytes)
    proto.doc_string = "edited after review"
    tampered_bytes = proto.SerializeToString()
    tampered = _sha(tampered_bytes)
    (export / "model.onnx").write_bytes(tampered_bytes)
    manifest = json.loads(honest_manifest)
    manifest["onnx_sha256"] = tampered
    (export / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")

    config = ServeConfig(
        str(models / "model.skops"),
        params_path=pipeline_repo / "params.yaml",
        expected_sha256=reviewed,
        expected_onnx_sha256=honest,
    )
    with pytest.raises(ModelSourceError) as error:
        load_served(config)
    message = str(error.value)
    assert "\n" not in message
    assert f"has sha256 {tampered}, not the pinned {honest}" in message

    # the model pinned, the export not: the export is not served (converted at start instead)
    unpinned = load_served(replace(config, expected_onnx_sha256=None))
    assert unpinned.info.onnx_sha256 != tampered
    assert "the build-time export is not pinned" in unpinned.runtime_note

    # the honest export, pinned: served from the export, both digests reported
    (export / "model.onnx").write_bytes(honest_bytes)
    (export / "manifest.json").write_text(honest_manifest, encoding="utf-8")
    served = load_served(config)
    assert served.runtime_note.startswith("ONNX Runtime (exported at build time")
    app = ServingApp(served)
    ready = call(app, "GET", "/ready").json()
    assert (ready["model_sha256"], ready["onnx_sha256"]) == (reviewed, honest)
    model = call(app, "GET", "/model").json()
    assert (model["sha256"], model["onnx_sha256"]) == (reviewed, honest)

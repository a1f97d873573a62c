"""The ONNX export made at build time (``modelci export``, a DVC stage) and its use at start-up.

Converting a model with skl2onnx and checking ONNX Runtime against scikit-learn takes most of a
cold start (and imports scikit-learn, skops and scipy). ``modelci export`` does it once, next to
the model file: ``models/onnx/manifest.json`` records the sha256 of the skops file it was made
from, the sha256 of ``models/onnx/model.onnx``, the class labels and the check's result (or why
there is no ONNX model). ``modelci serve`` uses the export only when both digests match the bytes
it loads (a registered version carries the folder as the run artifact ``onnx/``); otherwise it
converts and checks at start-up as before.

Nothing vouches for the manifest itself: whoever can edit ``model.onnx`` can rewrite its hash.
So a server whose model is pinned (``--sha256``, or a registry version's tag) serves the export
only when the export is pinned too (``--onnx-sha256``, or the version's tag
``modelci.onnx_sha256`` written by ``registry register``), and refuses to start when the
export's bytes differ from that pin (see ``modelci.serving.server.load_served``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPORT_DIR = "onnx"  # next to the model file, and the run artifact folder
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class Export:
    onnx: bytes
    classes: list[Any] | None
    note: str
    sha256: str  # of ``onnx``


def write_export(directory: Path, source: bytes, model: Any, schema: Any) -> str:
    """Convert and check ``model`` (loaded from ``source``); write the folder; return a note."""
    from modelci.serving.runtime import RuntimeUnavailableError, checked_onnx, json_classes

    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"source_sha256": hashlib.sha256(source).hexdigest()}
    target = directory / ONNX_FILE
    try:
        onnx_bytes, note = checked_onnx(model, schema)
    except RuntimeUnavailableError as error:
        target.unlink(missing_ok=True)
        manifest.update({"onnx_sha256": None, "reason": str(error).splitlines()[0][:300]})
        note = f"no ONNX model: {manifest['reason']}"
    else:
        target.write_bytes(onnx_bytes)
        manifest.update(
            {
                "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
                "classes": json_classes(model),
                "check": note,
            }
        )
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return note


def read_export(directory: Path, source_sha256: str) -> tuple[Export | None, str]:
    """The export in ``directory`` if it was made from the model with ``source_sha256`` and its
    ONNX file is intact; else None and why not (for the runtime note)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "no build-time export"
    if not isinstance(manifest, dict) or manifest.get("source_sha256") != source_sha256:
        return None, "the build-time export was made from another model file"
    if not manifest.get("onnx_sha256"):
        return None, f"build-time export: {manifest.get('reason', 'no ONNX model')}"
    try:
        onnx_bytes = (directory / ONNX_FILE).read_bytes()
    except OSError:
        return None, f"the build-time export has no {ONNX_FILE}"
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    if digest != manifest["onnx_sha256"]:
        return None, f"{ONNX_FILE} does not match the sha256 in its manifest"
    note = f"exported at build time, {manifest.get('check', '')}".rstrip(", ")
    return Export(onnx_bytes, manifest.get("classes"), note, digest), ""


def export_sha256(directory: Path, source_sha256: str) -> str | None:
    """The sha256 of the export in ``directory`` when it is intact and made from the model with
    ``source_sha256`` (what a release records as the export's pin), else None."""
    export, _ = read_export(directory, source_sha256)
    return export.sha256 if export is not None else None


def find_export(
    kind: str, uri: str, run_id: str | None, sha256: str, tracking_uri: str | None
) -> tuple[Export | None, str]:
    """The verified export of a model loaded from a local file (the folder next to it) or a
    run (its ``onnx/`` artifacts)."""
    if kind == "file":
        return read_export(Path(uri).parent / EXPORT_DIR, sha256)
    if run_id is None:
        return None, "no run to read a build-time export from"
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="modelci-onnx-") as tmp:
        try:
            local = MlflowClient(tracking_uri).download_artifacts(run_id, EXPORT_DIR, tmp)
        except Exception:  # missing folder or store error alike: convert at start instead
            return None, "the run has no build-time export"
        return read_export(Path(local), sha256)

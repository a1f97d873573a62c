"""Resolve, download, verify and load a model from a local file, the MLflow registry or a run.

Accepted sources (``uri``):

* a local path to a skops file, e.g. ``models/model.skops``;
* ``models:/NAME@ALIAS`` (e.g. ``models:/titanic-survival@champion``) or ``models:/NAME/VERSION``;
* ``runs:/RUN_ID`` or ``runs:/RUN_ID/PATH/TO/FILE.skops``.

For registry and run sources the bytes loaded are the run artifact ``model_file/model.skops``
(the exact file DVC tracks), checked against the tag ``modelci.model_sha256`` (the model
version's tag first, else the run's) with :func:`modelci.modelfile.verify_sha256` *before* any
object is built from them; a source without that tag is refused. Loading goes through
:func:`modelci.modelfile.load_model_bytes`, which refuses untrusted types. Nothing is unpickled.

The API is three functions, all typed: :func:`parse` (no I/O), :func:`resolve` (registry lookups,
no download; cheap enough to poll an alias) and :func:`load` (download, verify, load).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from modelci.errors import ModelCIError, ModelFileError
from modelci.tags import TAG_COMMIT, TAG_ONNX_SHA256, TAG_SHA256

MODEL_FILE_ARTIFACT = "model_file/model.skops"

SourceKind = Literal["file", "registry", "run"]


class ModelSourceError(ModelCIError):
    """A model URI is malformed, or the registry/run it names cannot be resolved."""


@dataclass(frozen=True)
class ModelRef:
    """What a URI points at, after registry lookups (:func:`resolve`) or before (:func:`parse`)."""

    uri: str
    kind: SourceKind
    path: Path | None = None
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    artifact_path: str = MODEL_FILE_ARTIFACT
    expected_sha256: str | None = None
    expected_onnx_sha256: str | None = None  # the version's pin of its build-time ONNX export
    # the registered version's commit: the run's is the commit before it (logged by dvc repro)
    git_commit: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a loaded model, as served by ``GET /model``."""

    uri: str
    kind: SourceKind
    sha256: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    git_commit: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    # the ONNX model served (None with scikit-learn), and the registry's pin of the build-time
    # export; both filled in by the server, the pin from the version's tag
    onnx_sha256: str | None = None
    pinned_onnx_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "source": self.kind,
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "git_commit": self.git_commit,
            "sha256": self.sha256,
            "onnx_sha256": self.onnx_sha256,
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    info: ModelInfo


def parse(uri: str) -> ModelRef:
    """Classify ``uri`` without any I/O; raises ModelSourceError when it is malformed."""
    if uri.startswith("models:/"):
        rest = uri.removeprefix("models:/").strip("/")
        if "@" in rest:
            name, _, alias = rest.partition("@")
            if name and alias and "/" not in name and "/" not in alias:
                return ModelRef(uri=uri, kind="registry", name=name, alias=alias)
        else:
            name, _, version = rest.partition("/")
            if name and version.isdigit():
                return ModelRef(uri=uri, kind="registry", name=name, version=version)
        raise ModelSourceError(
            f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION (a number)"
        )
    if uri.startswith("runs:/"):
        rest = uri.removeprefix("runs:/").strip("/")
        run_id, _, artifact = rest.partition("/")
        if not run_id:
            raise ModelSourceError(f"{uri}: expected runs:/RUN_ID[/PATH.skops]")
        return ModelRef(
            uri=uri,
            kind="run",
            run_id=run_id,
            artifact_path=artifact if artifact.endswith(".skops") else MODEL_FILE_ARTIFACT,
        )
    if "://" in uri or uri.startswith(("models:", "runs:")):
        raise ModelSourceError(
            f"{uri}: unsupported model URI (use a local .skops path, models:/NAME@ALIAS, "
            "models:/NAME/VERSION or runs:/RUN_ID)"
        )
    return ModelRef(uri=uri, kind="file", path=Path(uri))


def _client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    from modelci.tracking import quiet_mlflow

    quiet_mlflow()
    return MlflowClient(tracking_uri=tracking_uri)


def _first_line(error: Exception) -> str:
    """MLflow errors can span many lines (a server's HTML page): keep the first, or the type."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _registry_error(ref: ModelRef, error: Exception) -> ModelSourceError:
    return ModelSourceError(
        f"{ref.uri}: cannot resolve in the MLflow registry: {_first_line(error)}"
    )


def resolve(uri: str | ModelRef, tracking_uri: str | None = None) -> ModelRef:
    """Look a registry URI up (alias -> version -> run) without downloading anything.

    Returns the reference with ``version``, ``run_id``, ``expected_sha256`` and ``git_commit``
    filled in (from the model version's tags; a run's tags are read by :func:`load`). Local
    paths and run URIs are returned unchanged.
    """
    ref = parse(uri) if isinstance(uri, str) else uri
    if ref.kind != "registry":
        return ref
    client = _client(tracking_uri)
    try:
        if ref.alias is not None:
            version = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            version = client.get_model_version(ref.name, ref.version)
    except Exception as error:  # MlflowException (not found) and transport errors alike
        raise _registry_error(ref, error) from None
    if not version.run_id:
        raise ModelSourceError(
            f"{ref.uri}: model version {version.version} has no run, so no verifiable "
            f"{MODEL_FILE_ARTIFACT} artifact"
        )
    tags = dict(version.tags or {})
    return replace(
        ref,
        version=str(version.version),
        run_id=str(version.run_id),
        expected_sha256=tags.get(TAG_SHA256),
        expected_onnx_sha256=tags.get(TAG_ONNX_SHA256),
        git_commit=tags.get(TAG_COMMIT),
    )


def _read_file(ref: ModelRef, expected_sha256: str | None) -> tuple[bytes, ModelInfo]:
    from modelci.lineage import UNKNOWN, git_commit
    from modelci.modelfile import read_model_file, verify_sha256

    path = ref.path if ref.path is not None else Path(ref.uri)
    data = read_model_file(path)
    if expected_sha256:
        verify_sha256(data, expected_sha256, str(path))
    commit = git_commit()
    info = ModelInfo(
        uri=ref.uri,
        kind="file",
        sha256=hashlib.sha256(data).hexdigest(),
        git_commit=None if commit == UNKNOWN else commit,
    )
    return data, info


def _download(ref: ModelRef, tracking_uri: str | None) -> tuple[bytes, ModelInfo]:
    from modelci.modelfile import verify_sha256

    client = _client(tracking_uri)
    try:
        run = client.get_run(ref.run_id)
    except Exception as error:
        raise ModelSourceError(f"{ref.uri}: cannot read run {ref.run_id}: {error}") from None
    run_tags = dict(run.data.tags or {})
    expected = ref.expected_sha256 or run_tags.get(TAG_SHA256)
    if not expected:
        raise ModelFileError(
            f"{ref.uri}: neither the model version nor run {ref.run_id} has the tag "
            f"{TAG_SHA256}; refusing to load an unverifiable model"
        )
    with tempfile.TemporaryDirectory(prefix="modelci-model-") as tmp:
        try:
            local = client.download_artifacts(ref.run_id, ref.artifact_path, tmp)
        except Exception as error:
            raise ModelSourceError(
                f"{ref.uri}: cannot download {ref.artifact_path} from run {ref.run_id}: "
                f"{_first_line(error)}"
            ) from None
        data = Path(local).read_bytes()
    verify_sha256(data, expected, f"{ref.uri} ({ref.artifact_path})")
    info = ModelInfo(
        uri=ref.uri,
        kind=ref.kind,
        sha256=expected,
        name=ref.name,
        version=ref.version,
        alias=ref.alias,
        run_id=ref.run_id,
        git_commit=ref.git_commit or run_tags.get(TAG_COMMIT),
        metrics={key: float(value) for key, value in (run.data.metrics or {}).items()},
        pinned_onnx_sha256=ref.expected_onnx_sha256,
    )
    return data, info


def fetch(
    uri: str | ModelRef, tracking_uri: str | None = None, expected_sha256: str | None = None
) -> tuple[bytes, ModelInfo]:
    """The verified model bytes and their metadata (nothing is deserialized)."""
    ref = resolve(uri, tracking_uri)
    if ref.kind == "file":
        return _read_file(ref, expected_sha256)
    if expected_sha256:
        ref = replace(ref, expected_sha256=expected_sha256)
    return _download(ref, tracking_uri)


def load(
    uri: str | ModelRef,
    *,
    extra_trusted: Iterable[str] = (),
    tracking_uri: str | None = None,
    expected_sha256: str | None = None,
    metrics_file: Path | None = None,
) -> LoadedModel:
    """Resolve ``uri``, verify its sha256 (required for registry and run sources) and load it.

    ``expected_sha256`` pins the digest (for a local file, or to override the registry tag);
    ``metrics_file`` (a JSON object of numbers, like ``metrics.json``) supplies the metrics of a
    local file, which has no run to read them from.
    """
    from modelci.modelfile import load_model_bytes

    data, info = fetch(uri, tracking_uri, expected_sha256)
    if metrics_file is not None and not info.metrics:
        info = replace(info, metrics=read_metrics(metrics_file))
    model = load_model_bytes(data, info.uri, extra_trusted)
    return LoadedModel(model=model, info=info)


def read_metrics(path: Path) -> dict[str, float]:
    """Numeric entries of a metrics JSON file; a missing or malformed file gives ``{}``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        str(key): float(value)
        for key, value in raw.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }

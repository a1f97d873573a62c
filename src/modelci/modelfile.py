"""Model files in the skops format: written byte-reproducibly, loaded without unpickling.

skops names the arrays in its zip after ``id()`` of the objects and stamps the current time on
each entry, so two dumps of the same model differ. :func:`canonical_skops` renumbers the ids in
order of appearance and fixes the timestamps: the same data, params and seed then give the same
bytes, and the file's sha256 identifies the model.

:func:`load_model` refuses a file that holds any type outside skops' defaults plus an explicit
trusted list, before building a single object from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelci.errors import ModelFileError
from modelci.fileio import write_bytes

# Types that scikit-learn models hold and skops does not trust by default. Extend per model with
# ``train.trusted_types`` in params.yaml; anything else in a model file is refused.
DEFAULT_TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    # XGBoost and LightGBM (the boosting extra): exactly what skops reports as untrusted in
    # their fitted scikit-learn API estimators. A Booster's state is the library's own model
    # format (XGBoost's UBJSON bytes, LightGBM's model text), parsed by the library, never
    # unpickled; the OrderedDict is LightGBM's parameter map.
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "collections.OrderedDict",
)
_EPOCH = (1980, 1, 1, 0, 0, 0)
_SCHEMA = "schema.json"


def _renumber(node: Any, ids: dict[int, int], files: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_renumber(item, ids, files) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int):
            out[key] = ids.setdefault(value, len(ids) + 1)
        elif key == "file" and isinstance(value, str):
            suffix = Path(value).suffix
            out[key] = files.setdefault(value, f"{len(files) + 1:06d}{suffix}")
        else:
            out[key] = _renumber(value, ids, files)
    return out


def canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops archive so its bytes depend only on the model, not on the process."""
    from modelci.safezip import MODEL_BOUNDS, ZipRefused, read_members

    try:
        members = read_members(data, None, MODEL_BOUNDS)
        schema = json.loads(members[_SCHEMA])
    except (ZipRefused, KeyError, ValueError) as error:
        raise ModelFileError(f"not a valid skops archive: {error}") from None
    files: dict[str, str] = {}
    schema = _renumber(schema, {}, files)
    entries = {new: members[old] for old, new in files.items()}
    entries[_SCHEMA] = json.dumps(schema, indent=2).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, entries[name], compresslevel=6)
    return buffer.getvalue()


def dump_model(model: Any) -> bytes:
    import skops.io as sio

    return canonical_skops(sio.dumps(model))


def save_model(model: Any, path: Path) -> bytes:
    """Write ``model`` to ``path`` atomically; returns the bytes written."""
    data = dump_model(model)
    write_bytes(path, data)
    return data


def trusted_types(extra: Iterable[str] = ()) -> list[str]:
    return sorted({*DEFAULT_TRUSTED_TYPES, *extra})


def load_model_bytes(data: bytes, source: str, extra_trusted: Iterable[str] = ()) -> Any:
    """Build a model from skops bytes, refusing any type that is not explicitly trusted."""
    import skops.io as sio

    from modelci.safezip import ZipRefused, check_archive

    try:
        check_archive(data)  # skops reads members whole: bound them first
        untrusted = sio.get_untrusted_types(data=data)
    except (ZipRefused, zipfile.BadZipFile, json.JSONDecodeError, KeyError, ValueError) as error:
        raise ModelFileError(f"{source}: not a valid skops model file ({error})") from None
    allowed = set(trusted_types(extra_trusted))
    refused = sorted(set(untrusted) - allowed)
    if refused:
        raise ModelFileError(
            f"{source}: refusing to load untrusted type(s): {', '.join(refused)} "
            "(add them to train.trusted_types only if you trust this file)"
        )
    try:
        return sio.loads(data, trusted=sorted(set(untrusted)))
    except MemoryError:
        raise  # the CLI's out-of-memory line, not "cannot load model"
    except Exception as error:  # skops raises many types on a corrupt archive
        raise ModelFileError(f"{source}: cannot load model: {error}") from None


def verify_sha256(data: bytes, expected: str, source: str) -> None:
    """Refuse bytes whose sha256 differs from the registered value, before anything is loaded."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelFileError(
            f"{source}: sha256 {actual} does not match the registered {expected}; "
            "the model file was modified or replaced, refusing to load it"
        )


def read_model_file(path: Path) -> bytes:
    """The raw bytes of a model file, with a one-line error when it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found (run `dvc repro`)") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read model file: {error.strerror}") from None


def load_model(path: Path, extra_trusted: Iterable[str] = ()) -> Any:
    return load_model_bytes(read_model_file(path), str(path), extra_trusted)

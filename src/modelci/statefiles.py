"""Reading one repository state's files, shared by the PR report (``ci``) and the registry.

A :class:`Source` gives a state's files (the working tree here, a git commit in ``ci.state``);
:func:`read_declared` reads what its ``dvc.yaml`` declares, :func:`parse_metrics` and
:func:`merge_metrics` its metrics files. Registering a model that no MLflow run logged reads the
local metrics this way, exactly as a pull request's state reads them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from modelci.dvcfiles import DVC_YAML, Declared, defaults, parse_declared, vars_of
from modelci.errors import ModelCIError

# Bounds on what is read from a (possibly hostile) pull request.
MAX_FILE_BYTES = 64 * 1024 * 1024


class StateError(ModelCIError):
    """A repository state cannot be read: unknown ref, not a git repository, unreadable file."""


class Source(Protocol):
    """Where a state's files come from."""

    label: str

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist in this state."""

    def list_dir(self, path: str) -> list[str]:
        """Names of the files directly under ``path`` (empty when it does not exist)."""


@dataclass
class WorkTreeSource:
    """Files in the working tree under ``root``."""

    root: Path
    label: str = "working tree"
    commit: str = ""

    def read(self, path: str) -> bytes | None:
        file = self.root / path
        if not file.is_file():
            return None
        if file.stat().st_size > MAX_FILE_BYTES:
            raise StateError(f"{self.label}: {path}: larger than {MAX_FILE_BYTES} bytes")
        try:
            return file.read_bytes()
        except OSError as error:
            raise StateError(f"{self.label}: cannot read {path}: {error.strerror}") from None

    def list_dir(self, path: str) -> list[str]:
        folder = self.root / path
        if not folder.is_dir():
            return []
        return sorted(item.name for item in folder.iterdir() if item.is_file())


def parse_metrics(data: bytes, where: str) -> dict[str, float]:
    """``metrics.json``: a flat (or nested, flattened with dots) mapping of names to numbers.

    Non-numeric values are rejected; NaN and infinities are kept (the gate fails on them).
    """
    if where.endswith((".yaml", ".yml")):  # DVC metrics files may be YAML
        raw = load_yaml_mapping(data, where)
    else:
        raw = _load_json_object(data, where, "a JSON object of metric names to numbers")
    result: dict[str, float] = {}
    for key, value in flatten(raw).items():
        if isinstance(value, bool) or not isinstance(value, int | float | type(None)):
            raise StateError(f"{where}: metric {key!r} is not a number: {value!r}"[:300])
        result[key] = math.nan if value is None else float(value)
    return result


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_yaml_mapping(data: bytes, where: str) -> dict[str, Any]:
    """A YAML document that must be a mapping (empty counts as ``{}``); StateError otherwise."""
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise StateError(f"{where}: not valid YAML: {str(error).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StateError(f"{where}: expected a mapping at the top level")
    return raw


def read_json_object(data: bytes, where: str) -> dict[str, Any]:
    """A JSON document that must be an object; StateError naming ``where`` otherwise."""
    return _load_json_object(data, where)


def _load_json_object(data: bytes, where: str, expected: str = "a JSON object") -> dict[str, Any]:
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise StateError(f"{where}: not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise StateError(f"{where}: expected {expected}")
    return raw


def read_declared(source: Source, problems: list[str]) -> Declared:
    """What the state's ``dvc.yaml`` declares (modelci's defaults when it has none)."""
    where = f"{source.label}: {DVC_YAML}"
    try:
        data = source.read(DVC_YAML)
        if data is None:
            return defaults()
        raw = load_yaml_mapping(data, where)
    except StateError as error:
        problems.append(f"{error} (read with modelci's default paths)")
        return defaults()

    def read_mapping(path: str) -> dict[str, Any]:
        try:
            blob = source.read(path)
            return load_yaml_mapping(blob, f"{source.label}: {path}") if blob is not None else {}
        except StateError as error:
            problems.append(str(error))
            return {}

    return parse_declared(raw, vars_of(raw, read_mapping), problems, where)


def merge_metrics(
    files: Mapping[str, dict[str, float] | None], problems: list[str]
) -> dict[str, float] | None:
    """The metrics of every declared file as one mapping (None when no file could be read).

    Names stay as written; a name two files share keeps the first file's value and is also
    listed as ``FILE:NAME`` for the later ones (named in ``problems``).
    """
    merged: dict[str, float] | None = None
    for path, metrics in files.items():
        if metrics is None:
            continue
        merged = merged if merged is not None else {}
        for name, value in metrics.items():
            if name in merged:
                problems.append(f"{path}: metric {name!r} also in another metrics file")
                merged[f"{path}:{name}"] = value
            else:
                merged[name] = value
    return merged

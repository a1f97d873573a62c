"""The produced model file goes through the safe loader; a crafted malicious file is refused."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
import skops.io as sio

from modelci.errors import ModelFileError
from modelci.modelfile import load_model, trusted_types

pytestmark = pytest.mark.model


def test_model_holds_only_trusted_types(pipeline_repo: Path) -> None:
    untrusted = sio.get_untrusted_types(file=pipeline_repo / "models/model.skops")
    assert set(untrusted) <= set(trusted_types())


def test_model_loads_through_the_safe_loader(pipeline_repo: Path) -> None:
    model = load_model(pipeline_repo / "models/model.skops")
    assert type(model).__name__ == "Pipeline"


def _function_node(function: Any) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(sio.dumps({"f": function}))) as archive:
        schema = json.loads(archive.read("schema.json"))
    node: dict[str, Any] = schema["content"]["f"]
    return node


def test_model_file_with_injected_os_system_is_refused(pipeline_repo: Path, tmp_path: Path) -> None:
    """The real model with `os.system` spliced into its schema, as an attacker would craft it."""
    source = pipeline_repo / "models/model.skops"
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(entries["schema.json"])
    schema["content"]["content"]["memory"] = _function_node(os.system)
    entries["schema.json"] = json.dumps(schema).encode()
    crafted = tmp_path / "model.skops"
    with zipfile.ZipFile(crafted, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)

    with pytest.raises(ModelFileError, match=r"refusing to load untrusted type\(s\): .*system"):
        load_model(crafted)


def test_truncated_model_file_is_refused(pipeline_repo: Path, tmp_path: Path) -> None:
    data = (pipeline_repo / "models/model.skops").read_bytes()
    broken = tmp_path / "model.skops"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a valid skops model file"):
        load_model(broken)

"""skops model files: byte-reproducible dumps, the trusted-types gate and sha256 verification."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from modelci.errors import ModelFileError
from modelci.modelfile import (
    canonical_skops,
    dump_model,
    load_model,
    load_model_bytes,
    save_model,
    verify_sha256,
)

pytestmark = pytest.mark.unit


def fitted_tree() -> DecisionTreeClassifier:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 3))
    return DecisionTreeClassifier(random_state=0).fit(features, features[:, 0] > 0)


def test_raw_skops_dumps_differ_but_canonical_ones_match() -> None:
    model = fitted_tree()
    copy = fitted_tree()
    assert sio.dumps(model) != sio.dumps(copy)  # ids and timestamps leak into skops' zip
    assert dump_model(model) == dump_model(copy)


def test_canonical_archive_has_fixed_names_and_times() -> None:
    archive = zipfile.ZipFile(io.BytesIO(dump_model(fitted_tree())))
    names = archive.namelist()
    assert names == sorted(names)
    assert "schema.json" in names
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
    schema = json.loads(archive.read("schema.json"))
    assert schema["__id__"] >= 1


def test_canonical_is_idempotent_and_round_trips() -> None:
    model = fitted_tree()
    data = dump_model(model)
    assert canonical_skops(data) == data
    loaded = load_model_bytes(data, "tree")
    probe = np.array([[0.5, -1.0, 2.0], [-0.5, 0.0, 0.0]])
    assert (loaded.predict(probe) == model.predict(probe)).all()


def test_save_and_load_file(tmp_path: Path) -> None:
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    path = tmp_path / "models" / "model.skops"
    data = save_model(model, path)
    assert path.read_bytes() == data
    assert load_model(path).predict([[3.0]]).tolist() == [1]


def test_function_reference_is_refused_before_loading() -> None:
    """A file that would hand `os.system` to the caller never gets built."""
    payload = sio.dumps({"run": os.system})
    with pytest.raises(ModelFileError, match=r"refusing to load untrusted type\(s\): .*system"):
        load_model_bytes(payload, "evil.skops")


def test_default_trusted_types_load() -> None:
    payload = sio.dumps({"dtype": np.dtype("float64")})
    assert load_model_bytes(payload, "ok.skops")["dtype"] == np.dtype("float64")


def test_extra_trusted_types_are_honoured() -> None:
    payload = sio.dumps({"run": os.system})
    untrusted = sio.get_untrusted_types(data=payload)
    assert load_model_bytes(payload, "x.skops", extra_trusted=untrusted)["run"] is os.system


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a zip file", "not a valid skops model file"), (b"", "not a valid skops model file")],
)
def test_garbage_is_refused(content: bytes, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        load_model_bytes(content, "broken.skops")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"model file not found \(run `dvc repro`\)"):
        load_model(tmp_path / "model.skops")


def test_verify_sha256() -> None:
    import hashlib

    data = b"model bytes"
    verify_sha256(data, hashlib.sha256(data).hexdigest(), "m")
    with pytest.raises(ModelFileError, match="does not match the registered"):
        verify_sha256(data + b"!", hashlib.sha256(data).hexdigest(), "m")


def _bzip2_bomb(name: str, megabytes: int) -> bytes:
    """A zip whose ``name`` is ``megabytes`` MB of zeros in bzip2 (a few hundred bytes), its
    size header claiming 100 bytes: what a hostile model file could hold."""
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_BZIP2
        with archive.open(info, "w", force_zip64=False) as member:
            for _ in range(megabytes):
                member.write(bytes(1024 * 1024))
    data = bytearray(buffer.getvalue())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)
    return bytes(data)


@pytest.mark.parametrize("name", ["schema.json", "000001.npy"])
def test_a_compressed_bomb_model_file_is_refused_without_being_expanded(name: str) -> None:
    """Issue 19.5: every zip modelci opens is read through safezip's bounds; skops would have
    decompressed the whole member (bzip2 expands a whole chunk at once, whatever the header)."""
    import tracemalloc

    # 64 MB expanded: over three times the 20 MB peak allowed below, so a loader that expands
    # the member fails; it was 200 MB, whose bzip2 compression alone took 2 s of CPU per case.
    bomb = _bzip2_bomb(name, 64)
    assert len(bomb) < 20_000
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match=r"bomb\.skops: not a valid skops model file.*"
                           r"compression method 12"):  # fmt: skip
            load_model_bytes(bomb, "bomb.skops")
        with pytest.raises(ModelFileError, match="compression method 12"):
            canonical_skops(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000


def test_running_out_of_memory_while_loading_is_not_a_corrupt_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A MemoryError reaches the CLI's out-of-memory line instead of "cannot load model"."""
    data = dump_model(fitted_tree())

    def exhausted(*_: object, **__: object) -> None:
        raise MemoryError

    monkeypatch.setattr(sio, "loads", exhausted)
    with pytest.raises(MemoryError):
        load_model_bytes(data, "model.skops")

"""``compute:`` in params.yaml, and the Dask engine's pure parts: the per-row split, the schema
checks merged over partitions, and the record of the data's versions (no cluster here: the
cluster runs in tests/integration/test_dask_engine.py)."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from modelci.config import DataParams, PrepareParams, parse_params
from modelci.data import schema
from modelci.data.locations import check_unchanged, list_files, record_versions
from modelci.errors import ConfigError, DataError
from modelci.pipeline import cluster
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    return copy.deepcopy(loaded)


def dask_params(raw: dict[str, Any], **compute: Any) -> dict[str, Any]:
    raw["compute"] = {"engine": "dask", **compute}
    raw["train"]["estimator"] = "xgboost.dask.DaskXGBClassifier"
    raw["train"]["estimator_params"] = {"n_estimators": 5}
    return raw


def test_local_is_the_default(raw: dict[str, Any]) -> None:
    params = parse_params(raw)
    assert params.compute.engine == "local"
    assert params.compute.address == "env:DASK_SCHEDULER_ADDRESS"


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "tls://dask.example:443", "env:X_1"])
def test_scheduler_addresses_accepted(raw: dict[str, Any], address: str) -> None:
    assert parse_params(dask_params(raw, address=address)).compute.address == address


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        ({"address": "localhost:8786"}, "compute.address: 'localhost:8786' is not a scheduler"),
        ({"address": "env:"}, "compute.address: 'env:' is not a scheduler address"),
        ({"partitions": 0}, "compute.partitions: Input should be greater than or equal to 1"),
        ({"engine": "spark"}, "compute.engine: Input should be 'local' or 'dask'"),
        ({"workers": 2}, "compute.workers: unknown key"),
    ],
)
def test_bad_compute_is_named(raw: dict[str, Any], compute: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^params.yaml: " + message.replace("(", r"\(")):
        parse_params(dask_params(raw, **compute), "params.yaml")


def test_split_key_must_be_a_column_and_needs_dask(raw: dict[str, Any]) -> None:
    raw["prepare"]["split_key"] = "nope"
    with pytest.raises(ConfigError, match=r"prepare.split_key: 'nope' is neither a declared"):
        parse_params(dask_params(copy.deepcopy(raw)))
    raw["prepare"]["split_key"] = "age"
    with pytest.raises(ConfigError, match=r"prepare.split_key: applies to compute.engine dask"):
        parse_params(raw)


def test_a_scikit_learn_estimator_is_refused_on_dask(raw: dict[str, Any]) -> None:
    params = parse_params(dask_params(raw))
    sklearn = params.model_copy(
        update={
            "train": params.train.model_copy(
                update={"estimator": "sklearn.ensemble.HistGradientBoostingClassifier"}
            )
        }
    )
    with pytest.raises(ConfigError) as caught:
        cluster.check_estimator(sklearn)
    assert str(caught.value) == (
        "params.yaml: train.estimator: sklearn.ensemble.HistGradientBoostingClassifier cannot "
        "train on compute.engine: dask; use one of xgboost.dask.DaskXGBClassifier, "
        "lightgbm.DaskLGBMClassifier (binary task)"
    )
    cluster.check_estimator(params)  # the distributed learner is accepted


def test_a_dask_estimator_is_refused_on_the_local_engine(raw: dict[str, Any]) -> None:
    params = parse_params(dask_params(raw))
    local = params.model_copy(
        update={"compute": params.compute.model_copy(update={"engine": "local"})}
    )
    with pytest.raises(ConfigError, match=r"trains on a Dask cluster; set compute.engine: dask"):
        cluster.check_estimator(local)


def test_env_address_must_be_set(raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    compute = parse_params(dask_params(raw, address="env:MODELCI_TEST_DASK")).compute
    monkeypatch.delenv("MODELCI_TEST_DASK", raising=False)
    with pytest.raises(ConfigError, match=r"\$MODELCI_TEST_DASK is not set"):
        cluster.scheduler_address(compute)
    monkeypatch.setenv("MODELCI_TEST_DASK", "tcp://127.0.0.1:1")
    assert cluster.scheduler_address(compute) == "tcp://127.0.0.1:1"


DATA = DataParams.model_validate(
    {
        "source": "x",
        "target": "y",
        "task": "binary",
        "columns": {
            "n": {"type": "int", "nullable": True, "min": 0},
            "f": {"type": "float"},
            "c": {"type": "category", "categories": ["a", "b"]},
            "y": {"type": "int", "min": 0, "max": 1},
        },
    }
)


def table(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "n": rng.integers(0, 50, rows).astype("float64"),
            "f": rng.normal(size=rows),
            "c": rng.choice(["a", "b"], rows),
            "y": rng.integers(0, 2, rows),
        }
    )
    frame.loc[rng.choice(rows, rows // 10, replace=False), "n"] = np.nan
    return frame


def pieces(frame: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    bounds = np.linspace(0, len(frame), parts + 1).astype(int)
    return [frame.iloc[start:end] for start, end in itertools.pairwise(bounds)]


def split_in(frame: pd.DataFrame, parts: int, prepare: PrepareParams) -> pd.Series:
    masks = []
    for piece in pieces(frame, parts):
        normalized = cluster.canonical(schema.normalize_numeric(piece, DATA.columns), DATA)
        key = normalized[sorted(normalized.columns)]
        masks.append(cluster.in_test_split(normalized, key, prepare))
    return pd.concat(masks)


def test_the_split_does_not_depend_on_partitions() -> None:
    frame = table()
    prepare = PrepareParams(test_size=0.25, seed=3)
    whole = split_in(frame, 1, prepare)
    for parts in (2, 4, 7):
        pd.testing.assert_series_equal(split_in(frame, parts, prepare), whole)
    assert 0.2 < whole.mean() < 0.3
    assert not split_in(frame, 1, PrepareParams(test_size=0.25, seed=4)).equals(whole)


def test_partition_failures_read_as_the_local_path_s() -> None:
    frame = table(300)
    frame.loc[[5, 150, 290], "c"] = "z"
    frame.loc[list(range(100, 110)), "f"] = np.nan
    frame["extra"] = 1
    with pytest.raises(DataError) as caught:
        schema.validate(frame, DATA, "src")
    parts = [schema.check_partition(piece, DATA)[1] for piece in pieces(frame, 3)]
    lines = [f"src: {line}" for line in schema.describe(schema.merge_failures(parts))]
    assert sorted(lines) == sorted(caught.value.details)


def write(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def test_sources_list_folders_and_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "raw" / "b.parquet", table(10))
    write(tmp_path / "raw" / "a.parquet", table(10))
    (tmp_path / "raw" / "_SUCCESS").write_text("")
    assert list_files("raw") == ["raw/a.parquet", "raw/b.parquet"]
    assert list_files("raw/b*.parquet") == ["raw/b.parquet"]
    with pytest.raises(DataError, match=r"^nothing: data.source not found$"):
        list_files("nothing")
    (tmp_path / "raw" / "c.csv").write_text("n\n1\n")
    with pytest.raises(DataError, match=r"mixes Parquet and CSV"):
        list_files("raw")
    with pytest.raises(DataError, match=r"no \.parquet or \.csv files found"):
        list_files("raw/*.json")


def test_the_record_pins_content_and_notices_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "raw" / "a.parquet", table(10))
    record = record_versions("raw")
    assert record["format"] == "parquet"
    assert [sorted(entry) for entry in record["files"]] == [["md5", "path", "size"]]
    check_unchanged(record)
    write(path, table(11))
    with pytest.raises(DataError, match=r"1 file.s. changed while prepare read them, first raw/a"):
        check_unchanged(record)

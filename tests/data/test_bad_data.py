"""The bad-data suite: every broken input fails `modelci prepare` with a clear error, no output.

Each case runs the real CLI (``main(argv)``) on a small table derived from the default dataset,
configured only through a params file, and checks the exit code, the one-line headline, the
listed checks and that nothing was written under data/prepared.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from modelci.cli import main
from modelci.data.sources import load_descriptor, locate_packaged_file
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.data

PREPARED = Path("data/prepared")


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    path = locate_packaged_file(load_descriptor(REPO_ROOT / "data/titanic.source.yaml"))
    return pd.read_csv(path).head(200)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    raw: dict[str, Any] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["data"]["source"] = "input.csv"
    raw["data"]["min_rows"] = 50
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def use_source(workdir: Path, name: str) -> None:
    """Point data.source in the work directory's params.yaml at ``name``."""
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["data"]["source"] = name
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def prepare(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["prepare"])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, lines


def assert_no_output(workdir: Path) -> None:
    assert not (workdir / PREPARED).exists() or not any((workdir / PREPARED).iterdir())


def _set(frame: pd.DataFrame, column: str, row: int, value: Any) -> pd.DataFrame:
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "missing column": (
        lambda f: f.drop(columns="fare"),
        "column 'fare': declared in params.yaml but missing from the data",
    ),
    "wrong dtype": (
        lambda f: _set(f, "age", 3, "forty"),
        "column 'age': expected type float64, got 'forty'",
    ),
    "null where none allowed": (
        lambda f: _set(f, "gender", 5, None),
        "column 'gender': 1 null value(s) where none are allowed",
    ),
    "out of range": (
        lambda f: _set(f, "age", 7, 250.0).astype({"age": float}),
        "column 'age': 1 value(s) fail less_than_or_equal_to(100.0): 250.0",
    ),
    "unknown category": (
        lambda f: _set(f, "embarked", 2, "Atlantis"),
        "column 'embarked': 1 value(s) fail isin(",
    ),
    "extra column": (
        lambda f: f.assign(cabin="C85"),
        "column 'cabin': present in the data but not declared in params.yaml",
    ),
    "too few rows": (
        lambda f: f.head(10),
        "table: has fewer rows than the required 50 rows",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_schema_violation_is_reported(
    case: str, titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, expected = CASES[case]
    change(titanic.copy()).to_csv(workdir / "input.csv", index=False)
    code, lines = prepare(capsys)
    assert code == 1
    assert lines[0].startswith("modelci prepare: error: input.csv: ")
    assert "schema check(s) failed" in lines[0]
    assert any(expected in line for line in lines), lines
    assert_no_output(workdir)


def test_every_failing_check_is_listed(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _set(titanic.copy().drop(columns="fare"), "gender", 1, "robot")
    frame = _set(frame, "sibsp", 2, -3).assign(extra=1)
    frame.to_csv(workdir / "input.csv", index=False)
    code, lines = prepare(capsys)
    assert code == 1
    assert lines[0].startswith("modelci prepare: error: input.csv: 4 schema check(s) failed")
    listed = "\n".join(lines[1:])
    for fragment in ("'fare'", "'gender'", "'sibsp'", "'extra'"):
        assert fragment in listed
    assert_no_output(workdir)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "input.csv: file is empty"),
        (b"\xff\xfe\x00garbage\x00\x81\x82\n\x00\x00", "input.csv: cannot read table"),
    ],
    ids=["empty file", "unreadable file"],
)
def test_unreadable_input(
    content: bytes, expected: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "input.csv").write_bytes(content)
    code, lines = prepare(capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"modelci prepare: error: {expected}")
    assert_no_output(workdir)


def test_header_only_file_fails_min_rows(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    titanic.head(0).to_csv(workdir / "input.csv", index=False)
    code, lines = prepare(capsys)
    assert code == 1
    assert any("fewer rows than the required 50" in line for line in lines)
    assert_no_output(workdir)


def test_missing_file(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = prepare(capsys)
    assert code == 1
    assert lines == [
        "modelci prepare: error: input.csv: data file not found (data.source in params.yaml)"
    ]


def test_unsupported_file_type(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "input.xlsx").write_bytes(b"PK")
    use_source(workdir, "input.xlsx")
    code, lines = prepare(capsys)
    assert code == 1
    assert "unsupported file type '.xlsx'" in lines[0]


def test_tampered_packaged_dataset_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    descriptor = yaml.safe_load((REPO_ROOT / "data/titanic.source.yaml").read_text())
    descriptor["sha256"] = "0" * 64
    (workdir / "data.source.yaml").write_text(yaml.safe_dump(descriptor))
    use_source(workdir, "data.source.yaml")
    code, lines = prepare(capsys)
    assert code == 1
    assert "the installed package ships different data" in lines[0]
    assert_no_output(workdir)


def test_valid_parquet_input_is_split(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    titanic.to_parquet(workdir / "input.parquet", index=False)
    use_source(workdir, "input.parquet")
    assert main(["prepare"]) == 0
    train = pd.read_parquet(workdir / PREPARED / "train.parquet")
    test = pd.read_parquet(workdir / PREPARED / "test.parquet")
    assert len(train) + len(test) == len(titanic)
    assert set(train.columns) == set(titanic.columns)


def set_params(workdir: Path, section: str, **values: Any) -> None:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params.setdefault(section, {}).update(values)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize("nullable", [False, True], ids=["int", "nullable int"])
def test_fractional_values_in_an_int_column_are_refused(
    nullable: bool, titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 8: an int column accepted 39.1 and stayed float64 (serving then answered 422)."""
    columns = yaml.safe_load((workdir / "params.yaml").read_text())["data"]["columns"]
    columns["sibsp"]["nullable"] = nullable
    set_params(workdir, "data", columns=columns)
    frame = titanic.copy().astype({"sibsp": float})
    frame.loc[[3, 9], "sibsp"] = [1.5, 2.25]
    if nullable:
        frame.loc[4, "sibsp"] = None
    frame = _set(frame, "gender", 1, "robot")
    frame.to_csv(workdir / "input.csv", index=False)
    code, lines = prepare(capsys)
    assert code == 1
    assert any(
        "column 'sibsp': 2 value(s) fail whole numbers (type int): 1.5, 2.25" in line
        for line in lines
    ), lines
    assert any("column 'gender'" in line for line in lines[1:]), "listed with the other checks"
    assert_no_output(workdir)


def test_whole_floats_in_a_nullable_int_column_pass(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    columns = yaml.safe_load((workdir / "params.yaml").read_text())["data"]["columns"]
    columns["sibsp"]["nullable"] = True
    set_params(workdir, "data", columns=columns)
    frame = titanic.copy().astype({"sibsp": float})
    frame.loc[4, "sibsp"] = None
    frame.to_csv(workdir / "input.csv", index=False)
    assert main(["prepare"]) == 0, capsys.readouterr().err


def test_drop_columns_are_removed_before_validation(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = titanic.copy().assign(passenger_id=range(len(titanic)), name="A. Person")
    frame.to_csv(workdir / "input.csv", index=False)
    set_params(workdir, "data", drop_columns=["passenger_id", "name"])
    assert main(["prepare"]) == 0, capsys.readouterr().err
    train = pd.read_parquet(workdir / PREPARED / "train.parquet")
    assert set(train.columns) == set(titanic.columns)
    profile = json.loads((workdir / PREPARED / "profile.json").read_text())
    assert profile["dropped"]["columns"] == ["passenger_id", "name"]


def test_drop_column_missing_from_the_data_is_listed(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _set(titanic.copy(), "gender", 1, "robot").to_csv(workdir / "input.csv", index=False)
    set_params(workdir, "data", drop_columns=["passenger_id"])
    code, lines = prepare(capsys)
    assert code == 1
    listed = "\n".join(lines)
    assert "column 'passenger_id': in data.drop_columns but missing from the data" in listed
    assert "column 'gender'" in listed
    assert_no_output(workdir)


def test_a_column_both_declared_and_dropped_is_a_config_error(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    titanic.to_csv(workdir / "input.csv", index=False)
    set_params(workdir, "data", drop_columns=["fare"])
    code, lines = prepare(capsys)
    assert code == 2
    assert "data.drop_columns: 'fare' is also declared in data.columns" in lines[0]


def null_targets(titanic: pd.DataFrame, workdir: Path) -> None:
    frame = titanic.copy().astype({"survived": float})
    frame.loc[[2, 5, 11], "survived"] = None
    frame.to_csv(workdir / "input.csv", index=False)


def test_null_target_fails_by_default(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    null_targets(titanic, workdir)
    code, lines = prepare(capsys)
    assert code == 1
    assert any("column 'survived': 3 null value(s) where none are allowed" in x for x in lines)
    assert_no_output(workdir)


def test_null_target_drop_removes_and_counts_the_rows(
    titanic: pd.DataFrame, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    null_targets(titanic, workdir)
    set_params(workdir, "prepare", null_target="drop")
    assert main(["prepare"]) == 0, capsys.readouterr().err
    profile = json.loads((workdir / PREPARED / "profile.json").read_text())
    assert profile["dropped"]["null_target_rows"] == 3
    assert profile["rows"]["total"] == len(titanic) - 3
    train = pd.read_parquet(workdir / PREPARED / "train.parquet")
    assert train["survived"].dtype == "int64"


def test_null_target_must_be_error_or_drop(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_params(workdir, "prepare", null_target="impute")
    code, lines = prepare(capsys)
    assert code == 2
    assert lines[0].startswith("modelci prepare: error: params.yaml: prepare.null_target: ")
    assert "'error' or 'drop'" in lines[0]

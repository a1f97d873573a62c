"""Column names are data: whatever a CSV header holds, init's YAML files say what init meant.

A header such as ``"notes\\n  positive_label: 0\\n  #"`` once wrote ``data.positive_label: 0``
into params.yaml. Here hostile names (line breaks, quotes, ``#``, ``{{ }}``, ``${{ }}``, YAML
indicators, unicode, surrounding spaces) go through a CSV into ``make_plan``; every YAML file of
the plan is parsed back and compared with the structure init intends, and every other file must
not depend on the column names at all.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modelci.data.sources import read_table
from modelci.errors import DataError
from modelci.scaffold.init import Options, ScaffoldError, make_plan
from tests.unit.test_scaffold import SHA

pytestmark = pytest.mark.unit

HOSTILE = [
    "notes\n  positive_label: 0\n  #",
    "a: b",
    "# not a comment",
    "x # comment",
    "${{ secrets.GITHUB_TOKEN }}",
    "{{ cookiecutter }}",
    "${data.source}",
    "<<",
    "? key",
    "- item",
    "&anchor",
    "*alias",
    "!!python/object:os.system",
    "'single'",
    '"double"',
    "it's",
    " leading",
    "trailing ",
    "multi\n\nline   ",
    "tab\there",
    "carriage\rreturn",
    "null",
    "true",
    "1e3",
    "0x1F",
    "~",
    "origine/région",
    "列名",
    "emoji 🧪",
    "line\u2028separator",
    "next\x85line",
    "[flow, seq]",
    "{flow: map}",
    "%TAG",
    "@at",
    "`backtick`",
    "|",
    ">",
    "a" * 200,
]

names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=40,
) | st.sampled_from(HOSTILE)

ROWS = 60


def frame(numeric: str, category: str, text: str, target: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, ROWS).astype(float)
    labels[:3] = np.nan
    return pd.DataFrame(
        {
            numeric: rng.normal(0, 1, ROWS).round(3),
            category: rng.choice(["red", "green", "blue"], ROWS),
            text: [f"comment number {i} on this row" for i in range(ROWS)],
            target: labels,
        }
    )


def plan_for(folder: Path, columns: tuple[str, str, str, str]) -> tuple[str, dict[str, bytes]]:
    """(data file's suffix, plan) for the table under these names.

    A CSV header first, as an adopter's file would be; a name that pandas itself cannot
    round-trip through a CSV header (a lone carriage return) goes through Parquet instead.
    """
    table = frame(*columns)
    data = folder / "hostile.csv"
    table.to_csv(data, index=False)
    try:
        read = tuple(read_table(data).columns)
    except DataError:
        read = ()
    if read != columns:
        data.unlink()
        data = data.with_suffix(".parquet")
        table.to_parquet(data, index=False)
    return data.suffix, plan_of(data, columns[3])


def plan_of(data: Path, target: str) -> dict[str, bytes]:
    options = Options(
        directory=data.parent / "repo",
        data=data,
        target=target,
        workflows_ref=SHA,
        lock=False,
        null_target="drop",
    )
    return make_plan(options).files


BENIGN = ("amount", "colour", "remark", "label")


@functools.cache
def benign_plan(suffix: str) -> dict[str, bytes]:
    """The plan of the same table under plain names (it does not depend on the folder)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        table = frame(*BENIGN)
        data = folder / f"hostile{suffix}"
        if suffix == ".csv":
            table.to_csv(data, index=False)
        else:
            table.to_parquet(data, index=False)
        return plan_of(data, BENIGN[3])


def check(columns: tuple[str, str, str, str]) -> None:
    """params.yaml has exactly the intended structure; no other file depends on the names."""
    numeric, category, text, target = columns
    with tempfile.TemporaryDirectory() as scratch:
        suffix, files = plan_for(Path(scratch), columns)
    benign = benign_plan(suffix)
    params = yaml.safe_load(files["params.yaml"])
    expected = yaml.safe_load(benign["params.yaml"])
    assert list(params) == list(expected)
    data = params["data"]
    assert list(data) == list(expected["data"])
    assert data["target"] == target
    assert data["task"] == "binary"
    assert list(data["columns"]) == [numeric, category, target]
    assert list(data["columns"].values()) == list(expected["data"]["columns"].values())
    assert data["drop_columns"] == [text]
    assert params["prepare"] == expected["prepare"]
    assert params["evaluate"] == {"slices": [category]}
    for section in ("train", "gate", "tracking", "registry"):
        assert params[section] == expected[section], section
    assert set(files) == set(benign)
    for path, content in files.items():
        if path not in ("params.yaml", f"data/hostile{suffix}"):
            assert content == benign[path], f"{path} depends on the column names"
        if path.endswith((".yaml", ".yml")):
            yaml.safe_load(content)


@pytest.mark.parametrize(
    "columns", [tuple((HOSTILE * 2)[i : i + 4]) for i in range(0, len(HOSTILE), 4)]
)
def test_each_known_hostile_name_reaches_yaml_only_as_data(
    columns: tuple[str, str, str, str],
) -> None:
    check(columns)


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(st.lists(names, min_size=4, max_size=4, unique=True))
def test_any_column_names_reach_yaml_only_as_data(columns: list[str]) -> None:
    check((columns[0], columns[1], columns[2], columns[3]))


@pytest.mark.parametrize(
    "name", ["evil\n!.env\nx.csv", "*.csv", "#data.csv", "[ab].csv", "a\\b.csv"]
)
def test_a_data_file_name_that_is_gitignore_syntax_is_refused(tmp_path: Path, name: str) -> None:
    data = tmp_path / name
    frame(*BENIGN).to_csv(data, index=False)
    with pytest.raises(ScaffoldError, match="rename the file"):
        plan_of(data, BENIGN[3])


def test_a_data_file_name_with_spaces_is_ignored_by_its_exact_path(tmp_path: Path) -> None:
    data = tmp_path / "Sales 2024 (v2).csv"
    frame(*BENIGN).to_csv(data, index=False)
    files = plan_of(data, BENIGN[3])
    assert "/data/Sales 2024 (v2).csv" in files[".gitignore"].decode().splitlines()
    assert yaml.safe_load(files["params.yaml"])["data"]["source"] == "data/Sales 2024 (v2).csv"

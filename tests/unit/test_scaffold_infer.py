"""Schema inference a data scientist would write (#23.7): what init declares, leaves out or
refuses, and the reason it writes beside each decision in ``params.yaml``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelci.data.sources import read_table
from modelci.errors import ConfigError, DataError
from modelci.scaffold.infer import MIN_ROWS, infer
from modelci.scaffold.init import Options, make_plan

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"


def cars(rows: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cylinders = rng.choice([4, 6, 8], rows)
    return pd.DataFrame(
        {
            "Region": ["Anvers"] * rows,
            "Comments": rng.choice(
                [
                    "runs well but the clutch slips in the cold",
                    "bought from the first owner with a full service book",
                    "small dent on the rear door, otherwise clean",
                    "needs new tyres before the next inspection",
                ],
                rows,
            ),
            "Share": rng.choice(["1/2", "1/3", "2/3"], rows),
            "Ratio": rng.choice(["3:1", "4:1", "5:2"], rows),
            "Built": pd.date_range("1990-01-01", periods=rows, freq="MS").strftime("%Y-%m-%d"),
            "origine/région": rng.choice(["Liège", "Namur"], rows),
            "Cylinders": cylinders,
            "mpg": 60 / cylinders + rng.normal(0, 0.5, rows),
        }
    )


def test_constant_columns_and_prose_are_left_out_with_the_reason() -> None:
    inferred = infer(cars(), "mpg")
    left = {c.name: c.reason for c in inferred.left_out}
    assert "a constant: one value in 120 rows" in left["Region"]
    assert "free text" in left["Comments"]
    assert "words per value" in left["Comments"]
    assert not {"Region", "Comments"} & set(inferred.slices)
    assert "date" in left["Built"]


def test_fractions_and_ratios_are_not_dates() -> None:
    declared = {c.name: c for c in infer(cars(), "mpg").columns}
    assert declared["Share"].categories == ("1/2", "1/3", "2/3")
    assert declared["Ratio"].categories == ("3:1", "4:1", "5:2")


def test_a_repeated_header_is_refused_not_renamed(tmp_path: Path) -> None:
    data = tmp_path / "cars.csv"
    data.write_text("Cylinders,mpg,Cylinders\n4,30.1,4\n6,20.5,6\n")
    with pytest.raises(DataError, match=r"repeats column\(s\) 'Cylinders' \(2 times\)"):
        read_table(data)


def test_too_small_data_is_refused_with_the_minimum() -> None:
    frame = cars(rows=5)
    with pytest.raises(
        ConfigError, match=f"5 row\\(s\\) with a 'mpg' value; .* at least {MIN_ROWS}"
    ):
        infer(frame, "mpg", "regression")


def test_semicolon_file_gets_a_separator_hint(tmp_path: Path) -> None:
    data = tmp_path / "cars.csv"
    cars().to_csv(data, sep=";", index=False)
    with pytest.raises(ConfigError, match="looks ';'-separated"):
        infer(read_table(data), "mpg")


def test_params_yaml_says_why_and_keeps_unicode_names(tmp_path: Path) -> None:
    data = tmp_path / "cars.csv"
    cars().to_csv(data, index=False)
    plan = make_plan(
        Options(directory=tmp_path / "repo", data=data, target="mpg", workflows_ref=SHA, lock=False)
    )
    text = plan.files["params.yaml"].decode()
    assert "origine/région:" in text
    assert "\\xE9" not in text
    columns = yaml.safe_load(text)["data"]["columns"]
    lines = {
        line.split(":")[0].strip(): line for line in text.splitlines() if line.startswith("    ")
    }
    for name in columns:
        assert "  # " in lines[name], f"no reason written beside {name!r}"
    assert "# 2 distinct values in 120 rows" in lines["origine/région"]
    assert "# whole numbers, the range observed in 120 rows" in lines["Cylinders"]


def test_a_multiclass_target_with_hundreds_of_values_gets_a_short_error(tmp_path: Path) -> None:
    """--task multiclass on a quantity: one short line naming ten classes and the count."""
    rng = np.random.default_rng(0)
    frame = cars(rows=400)
    frame["mpg"] = rng.integers(0, 350, 400)
    data = tmp_path / "cars.csv"
    frame.to_csv(data, index=False)
    options = Options(
        directory=tmp_path / "repo",
        data=data,
        target="mpg",
        task="multiclass",
        workflows_ref=SHA,
        lock=False,
    )
    with pytest.raises(DataError) as caught:
        make_plan(options)
    message = str(caught.value)
    assert len(message) < 300, message
    assert re.search(r"and \d+ more have fewer than 2 rows", message)
    assert "use data.task: regression" in message

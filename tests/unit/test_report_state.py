"""Reading a repository state and comparing dvc.lock files: parsing and missing/bad files."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from modelci.ci.lockcheck import lock_changes
from modelci.ci.state import parse_plot_csv, read_state
from modelci.dvcfiles import lock_out_md5, parse_lock
from modelci.statefiles import StateError, WorkTreeSource, flatten, parse_metrics

pytestmark = pytest.mark.unit


def test_parse_metrics_flattens_and_keeps_nan() -> None:
    data = b'{"accuracy": 0.8, "nested": {"f1": 1}, "bad": NaN, "none": null}'
    metrics = parse_metrics(data, "metrics.json")
    assert metrics["accuracy"] == 0.8
    assert metrics["nested.f1"] == 1.0
    assert math.isnan(metrics["bad"])
    assert math.isnan(metrics["none"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{oops", "metrics.json: not valid JSON"),
        (b"[1]", "metrics.json: expected a JSON object"),
        (b'{"a": "high"}', "metrics.json: metric 'a' is not a number: 'high'"),
        (b'{"a": true}', "metrics.json: metric 'a' is not a number: True"),
        (b"\xff", "metrics.json: not valid JSON"),
    ],
)
def test_parse_metrics_errors_name_file_and_metric(data: bytes, message: str) -> None:
    with pytest.raises(StateError, match="^" + re.escape(message)):
        parse_metrics(data, "metrics.json")


def test_flatten_keeps_lists_and_empty_mappings_as_leaves() -> None:
    assert flatten({"a": {"b": {"c": 1}, "d": [1, 2], "e": {}}}) == {
        "a.b.c": 1,
        "a.d": [1, 2],
        "a.e": {},
    }


def test_plot_csv_is_bounded_and_sampled_over_the_whole_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("modelci.ci.state.MAX_PLOT_ROWS", 3)
    monkeypatch.setattr("modelci.ci.state.MAX_DISTINCT_ROWS", 4)
    lines = "".join(f"{i},{2 * i}\n" for i in range(10))
    table = parse_plot_csv(f"x,y\n{lines}".encode(), "plots/roc.csv")
    assert table.columns == ("x", "y")
    assert table.rows == (("0", "0"), ("4", "8"), ("8", "16"))  # evenly spread, not a prefix
    assert table.row_count == 10
    assert table.sampled
    assert table.distinct is None  # 10 distinct rows: more than can be counted
    assert parse_plot_csv(b"", "plots/roc.csv").columns == ()


def test_plot_csv_counts_few_distinct_rows_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelci.ci.state.MAX_PLOT_ROWS", 3)
    table = parse_plot_csv(b"a,p\n" + b"1,1\n0,0\n0,0\n1,0\n" * 5, "plots/confusion.csv")
    assert table.sampled
    assert dict(table.weighted_rows()) == {("1", "1"): 5, ("0", "0"): 10, ("1", "0"): 5}


def test_read_state_records_missing_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{broken")
    (tmp_path / "params.yaml").write_text("a: [\n")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots/roc.csv").write_text("fpr,tpr\n0,0\n1,1\n")
    (tmp_path / "plots/notes.txt").write_text("ignored")
    state = read_state(WorkTreeSource(tmp_path))
    assert state.metrics is None
    assert state.params is None
    assert set(state.plots) == {"roc"}
    problems = "\n".join(state.problems)
    assert "working tree: metrics.json: not valid JSON" in problems
    assert "working tree: params.yaml: not valid YAML" in problems
    assert "dvc.lock: not found in working tree" in problems
    assert "data/prepared/profile.json: not found in working tree" in problems
    assert "models/model.skops: not found in working tree" in problems
    with pytest.raises(StateError, match=r"metrics\.json: not valid JSON"):
        read_state(WorkTreeSource(tmp_path), strict_metrics=True)


def test_read_state_hashes_the_model(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models/model.skops").write_bytes(b"abc")
    (tmp_path / "metrics.json").write_text(json.dumps({"a": 1}))
    state = read_state(WorkTreeSource(tmp_path))
    assert state.model_sha256 == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert state.metrics == {"a": 1.0}


def test_lock_out_md5_and_lock_changes() -> None:
    old = {
        "stages": {
            "train": {
                "cmd": "modelci train",
                "deps": [{"path": "src/train.py", "md5": "1"}],
                "params": {"params.yaml": {"train": {"seed": 1}}},
                "outs": [{"path": "models/model.skops", "md5": "m1"}],
            },
            "old": {"cmd": "x"},
        }
    }
    new = {
        "stages": {
            "train": {
                "cmd": "modelci train --fast",
                "deps": [{"path": "src/train.py", "md5": "2"}, {"path": "src/new.py", "md5": "3"}],
                "params": {"params.yaml": {"train": {"seed": 2}}},
                "outs": [{"path": "models/model.skops", "md5": "m2"}],
            },
            "extra": {"cmd": "y"},
        }
    }
    old_lock, new_lock = parse_lock(old), parse_lock(new)
    assert lock_out_md5(old_lock, "models/model.skops") == "m1"
    assert lock_out_md5(None, "models/model.skops") is None
    assert lock_changes(old_lock, new_lock) == [
        "stage extra: not in the committed dvc.lock",
        "stage old: no longer in dvc.lock",
        "stage train: cmd changed",
        "stage train: dep src/new.py added",
        "stage train: dep src/train.py changed",
        "stage train: out models/model.skops changed",
        "stage train: param params.yaml.train.seed changed",
    ]
    assert lock_changes(new_lock, new_lock) == []
    assert lock_changes(parse_lock({"stages": [1]}), new_lock) == ["dvc.lock: no 'stages' mapping"]


def test_oversized_files_are_problems_not_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelci.statefiles.MAX_FILE_BYTES", 10)
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.123456789}')
    state = read_state(WorkTreeSource(tmp_path))
    assert state.metrics is None
    assert "working tree: metrics.json: larger than 10 bytes" in state.problems


def test_params_files_are_parsed_by_their_suffix() -> None:
    """DVC tracks keys of TOML and JSON params files too (pyproject.toml's version, say)."""
    from modelci.ci.state import params_parser

    toml = params_parser("pyproject.toml")(b'[project]\nversion = "0.2.0"\n', "pyproject.toml")
    assert toml == {"project": {"version": "0.2.0"}}
    assert params_parser("p.json")(b'{"a": 1}', "p.json") == {"a": 1}
    assert params_parser("params.yaml")(b"a: 1\n", "params.yaml") == {"a": 1}
    with pytest.raises(StateError, match=r"pyproject\.toml: not valid TOML"):
        params_parser("pyproject.toml")(b"[project\n", "pyproject.toml")

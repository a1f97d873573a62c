"""The report's statistics: predictions tables, intervals, slices, the data diff, the comment."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelci.ci.data_diff import shift_columns
from modelci.ci.predictions import changed_test_split
from modelci.ci.report import build_report, dumps_json, render_markdown, to_json
from modelci.ci.slices import slice_rows
from modelci.ci.state import RepoState
from modelci.config import GateParams, MetricRule, SliceRule
from modelci.dvcfiles import DvcLock, parse_lock
from modelci.judge.comparison import compare_sides, to_scored
from modelci.judge.metrics import Predictions
from modelci.judge.stats import StatsError
from modelci.prediction_table import to_frame

pytestmark = pytest.mark.unit

GATE = GateParams(
    metrics={
        "accuracy": MetricRule(mode="significance"),
        "roc_auc": MetricRule(tolerance=0.02),
        "average_precision": MetricRule(min=0.1),
    },
    slices=(SliceRule(column="gender", metric="accuracy", max_gap=0.5),),
)


def _frame(seed: int, rows: int = 400, flip: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    actual = np.random.default_rng(0).integers(0, 2, rows)
    score = np.clip(actual * 0.35 + rng.random(rows) * 0.65, 0, 1)
    predicted = (score > 0.5).astype(int)
    flips = rng.random(rows) < flip
    predicted[flips] = 1 - actual[flips]
    proba = np.stack([1 - score, score], axis=1)
    return to_frame(Predictions(actual, predicted, proba, [0, 1]))


def test_the_predictions_table_round_trips_to_the_scored_encoding() -> None:
    frame = _frame(1)
    assert list(frame.columns) == ["actual", "predicted", "proba:0", "proba:1"]
    scored = to_scored(frame, classification=True, positive_label=1)
    assert scored.classes == ("0", "1")
    assert scored.positive == 1
    assert (scored.actual == frame["actual"].to_numpy()).all()
    regression = to_scored(
        frame[["actual", "predicted"]], classification=False, positive_label=None
    )
    assert regression.classes == ()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"actual": [1]}), "no column 'predicted'"),
        (pd.DataFrame({"actual": [1], "predicted": [2], "proba:1": [0.1]}), "labels ['2']"),
    ],
)
def test_bad_predictions_tables_are_errors(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(StatsError, match=message.replace("[", r"\[")):
        to_scored(frame, classification=True, positive_label=1)


def test_compare_sides_pairs_same_rows_and_notes_unsupported_metrics() -> None:
    base = to_scored(_frame(1), True, 1)
    head = to_scored(_frame(2), True, 1)
    paired = compare_sides(GATE, base, head, test_changed=False)
    assert paired.paired is True
    assert set(paired.intervals) == {"accuracy", "roc_auc"}
    assert paired.notes == [
        "average_precision: no per-row statistic, compared on the point estimate"
    ]
    assert paired.intervals["accuracy"].level == 0.95
    unpaired = compare_sides(GATE, base, head, test_changed=True)
    assert unpaired.paired is False
    assert unpaired.intervals["accuracy"].method == "unpaired bootstrap"


def test_test_split_change_is_read_from_both_locks() -> None:
    def lock(md5: str) -> DvcLock:
        outs = [{"path": "data/prepared/test.parquet", "md5": md5}]
        return parse_lock({"stages": {"prepare": {"outs": outs}}})

    assert changed_test_split(lock("a"), lock("b"))
    assert not changed_test_split(lock("a"), lock("a"))
    assert not changed_test_split(None, lock("b"))  # unknown: pair if the rows agree


def test_slice_rows_put_the_largest_regression_first_and_small_slices_last() -> None:
    base = {
        "gender": {"female": {"rows": 100, "accuracy": 0.8}, "male": {"rows": 300, "accuracy": 0.8}}
    }
    base["class"] = {"crew": {"rows": 4}}
    head = {
        "gender": {
            "female": {"rows": 100, "accuracy": 0.7},
            "male": {"rows": 300, "accuracy": 0.82},
        }
    }
    head["class"] = {"crew": {"rows": 4}}
    rows = slice_rows(base, head, ["accuracy"], {"accuracy": True})
    assert [(row.column, row.value) for row in rows] == [
        ("gender", "female"),
        ("gender", "male"),
        ("class", "crew"),
    ]
    assert rows[0].delta("accuracy") == pytest.approx(-0.1)
    assert rows[-1].too_small


def test_data_diff_names_shifted_columns_nulls_and_categories() -> None:
    rng = np.random.default_rng(0)
    base = pd.DataFrame({"age": rng.normal(30, 5, 2000), "port": rng.choice(["A", "B"], 2000)})
    head = pd.DataFrame({"age": rng.normal(40, 5, 2000), "port": rng.choice(["A", "C"], 2000)})
    head.loc[:199, "age"] = np.nan
    columns = {"age": {"type": "float"}, "port": {"type": "category"}, "gone": {"type": "int"}}
    shift = shift_columns(base, head, columns)
    by_name = {c.column: c for c in shift.columns}
    assert by_name["age"].psi > 0.25
    assert by_name["age"].null_rate_current == pytest.approx(0.1)
    assert by_name["port"].new_categories == ("C",)
    assert by_name["port"].removed_categories == ("B",)
    assert shift.notes == ["column 'gone' is not in both training splits"]
    same = shift_columns(base, base, {"age": {"type": "float"}})
    assert same.columns[0].psi == 0


def _state(label: str, frame: pd.DataFrame) -> RepoState:
    accuracy = float((frame["actual"] == frame["predicted"]).mean())
    slices = {"gender": {"female": {"rows": 150, "accuracy": accuracy}, "x": {"rows": 2}}}
    return RepoState(
        label=label,
        metrics={"accuracy": accuracy, "roc_auc": 0.8, "average_precision": 0.7},
        slices=slices,
    )


def test_the_comment_shows_intervals_slices_and_the_headline() -> None:
    base_frame, head_frame = _frame(1), _frame(1, flip=0.15)
    base = to_scored(base_frame, True, 1)
    head = to_scored(head_frame, True, 1)
    comparison = compare_sides(GATE, base, head, test_changed=False)
    report = build_report(
        _state("main", base_frame), _state("PR", head_frame), GATE, comparison=comparison
    )
    markdown, _ = render_markdown(report)
    headline = markdown.splitlines()[1]
    assert headline.startswith("## 🔴 modelci report: gate FAILED: accuracy: fell ")
    assert "(95% CI " in headline
    assert headline.endswith("significant")
    assert "| CI of delta | significant |" in markdown
    assert "_Intervals: paired bootstrap over 400 test rows, 2000 resamples;" in markdown
    assert "| gender = x | 2 → 2 | _too small to judge_ |" in markdown
    assert "slice rule accuracy over gender: ✅ pass: too small to judge" in markdown
    payload = json.loads(dumps_json(to_json(report)))
    assert payload["statistics"]["intervals"]["accuracy"]["significant"] is True
    assert payload["gate"]["metrics"][0]["interval"]["method"] == "paired bootstrap"
    assert payload["slices"][0]["metrics"]["accuracy"]["delta"] < 0


def test_curve_legends_carry_the_area_and_multiclass_titles_the_averaging(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from modelci.ci.plots import _xy_figure, curve_area, render_plots
    from modelci.ci.state import PlotTable

    assert curve_area([0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5)
    assert curve_area([1.0, 0.5, 0.0], [0.5, 0.5, 1.0]) == pytest.approx(0.625)  # x unsorted
    perfect = PlotTable(("fpr", "tpr"), (("0", "0"), ("0", "1"), ("1", "1")))
    figure = _xy_figure(plt, [("PR", perfect)], "curve", "fpr", "tpr", "ROC", "x", "y")
    try:
        legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    finally:
        plt.close(figure)
    assert legend == ["PR (AUC 1.000)"]
    multiclass = RepoState(label="PR", params={"data": {"task": "multiclass"}})
    multiclass.plots["roc"] = perfect
    plots, _ = render_plots(RepoState(label="base"), multiclass, tmp_path)
    assert plots[0].title == "ROC curve (micro-average, one-vs-rest)"


def test_running_out_of_memory_reading_predictions_is_not_a_bad_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A MemoryError reaches the CLI's out-of-memory line instead of becoming a report note."""
    from modelci.ci import predictions

    def exhausted(*_: object, **__: object) -> None:
        raise MemoryError

    monkeypatch.setattr(predictions.pd, "read_parquet", exhausted)
    with pytest.raises(MemoryError):
        predictions._scored(b"PAR1", {})

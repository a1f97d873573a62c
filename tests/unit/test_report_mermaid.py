"""Plots inside the comment: Mermaid charts resampled from the plot tables evaluate writes, and the
confusion matrix as a table, for binary, multiclass and regression models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from modelci.ci import mermaid
from modelci.ci.plots import Plot, render_plots
from modelci.ci.report import build_report, render_markdown
from modelci.ci.state import PlotTable, RepoState, parse_plot_csv
from modelci.config import DataParams, MetricRule
from modelci.dvcfiles import PlotDecl
from modelci.judge.metrics import Predictions
from modelci.pipeline.plot_data import plot_tables

pytestmark = pytest.mark.unit

RNG_SEED = 7
SERIES = re.compile(r"^    line \[(.*)\]$", re.MULTILINE)


def series(chart: str) -> list[list[float]]:
    return [[float(v) for v in found.split(", ")] for found in SERIES.findall(chart)]


def data(task: str) -> DataParams:
    target = {"type": "float"} if task == "regression" else {"type": "int"}
    return DataParams.model_validate(
        {"source": "x.csv", "target": "y", "task": task, "columns": {"x": target, "y": target}}
    )


def tables(task: str, skill: float, rows: int = 600) -> dict[str, PlotTable]:
    """The plot tables evaluate writes for a model of the given skill, parsed as the report
    reads them."""
    rng = np.random.default_rng(RNG_SEED)
    if task == "regression":
        y_true = rng.normal(10, 3, rows)
        y_pred = y_true + rng.normal(0, 1 / skill, rows)
        pred = Predictions(y_true, y_pred, None, [])
    else:
        classes = [0, 1] if task == "binary" else [0, 1, 2]
        y_true = rng.choice(classes, rows)
        logits = rng.normal(0, 1, (rows, len(classes))) + skill * np.eye(len(classes))[y_true]
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        pred = Predictions(y_true, proba.argmax(axis=1), proba, classes)
    written = plot_tables(pred, data(task))
    return {
        name.removesuffix(".csv"): parse_plot_csv(table.to_csv(index=False).encode(), name)
        for name, table in written.items()
    }


def states(task: str) -> tuple[RepoState, RepoState]:
    params = {"data": {"task": task}}
    base = RepoState("main", params=params, plots=tables(task, 1.0))
    head = RepoState("PR", params=params, plots=tables(task, 2.0))
    return base, head


def test_envelope_takes_the_top_of_a_vertical_climb_and_interpolates_between() -> None:
    at = np.linspace(0, 1, 5)
    roc = mermaid.upper_envelope([0, 0, 0.5, 1], [0, 0.6, 0.8, 1], at)
    assert roc == pytest.approx([0.6, 0.7, 0.8, 0.9, 1.0])
    # a precision-recall curve in sklearn's order (recall falling), with a dip: the best
    # precision reached at each recall
    pr = mermaid.upper_envelope([1, 0.5, 0.5, 0], [0.4, 0.5, 0.9, 1], at)
    assert pr == pytest.approx([1.0, 0.95, 0.9, 0.45, 0.4])
    # outside its x range a curve keeps its end's value; a single point is flat
    assert mermaid.upper_envelope([0.25, 0.75], [0.2, 0.4], at) == pytest.approx(
        [0.2, 0.2, 0.3, 0.4, 0.4]
    )
    assert mermaid.upper_envelope([0.5], [0.3], at) == [0.3] * 5


def test_numbers_and_text_are_written_in_the_whitelisted_forms() -> None:
    assert [mermaid.number(v) for v in (1.0, 0.12345, -0.0001, 1234.5, -2.5)] == [
        "1",
        "0.123",
        "0",
        "1234.5",
        "-2.5",
    ]
    hostile = 'ROC "x" <img src=x onerror=alert(1)> %%{init}%% [click](http://e) @team #1;'
    text = mermaid.chart_text(hostile)
    assert re.fullmatch(r"[A-Za-z0-9 .,:()+-]{1,60}", text)
    assert mermaid.chart_text("\n\t") == "-"


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_classification_curves_are_resampled_lines_of_base_and_pr(task: str) -> None:
    base, head = states(task)
    plots, warnings = render_plots(base, head, Path("unused"), ("mermaid",))
    assert warnings == []
    assert [(p.name, p.file) for p in plots] == [
        ("roc", ""),
        ("precision_recall", ""),
        ("confusion", ""),
    ]
    roc, pr, confusion = plots
    suffix = " (micro-average, one-vs-rest)" if task == "multiclass" else ""
    assert f'    title "ROC curve{suffix}"' in roc.chart
    assert '    x-axis "False positive rate" 0 --> 1' in roc.chart
    assert '    y-axis "True positive rate" 0 --> 1' in roc.chart
    chance, base_line, pr_line = series(roc.chart)
    assert chance == pytest.approx(list(np.linspace(0, 1, mermaid.GRID_POINTS)))
    assert len(base_line) == len(pr_line) == mermaid.GRID_POINTS
    assert all(b <= a + 1e-9 for a, b in zip(pr_line[1:], pr_line[:-1], strict=True))  # ROC rises
    # the better model's curve lies above (its area too), and both end at (1, 1)
    assert sum(pr_line) > sum(base_line)
    assert base_line[-1] == pr_line[-1] == 1
    assert roc.caption.startswith("Lines in order: chance, base, PR. Area under the curve: base ")
    no_skill, *_ = series(pr.chart)
    assert len(set(no_skill)) == 1
    positives = 1 / 2 if task == "binary" else 1 / 3  # the share of positive indicators
    assert no_skill[0] == pytest.approx(positives, abs=0.06)
    assert pr.caption.startswith("Lines in order: no skill, base, PR.")
    classes = ("0", "1") if task == "binary" else ("0", "1", "2")
    assert confusion.labels == classes
    assert [who for who, _ in confusion.matrices] == ["base", "PR"]
    assert all(sum(map(sum, matrix)) == 600 for _, matrix in confusion.matrices)


def test_resampled_roc_stays_on_the_exact_curve() -> None:
    """Each point of the PR line is the exact ROC curve's height at that false positive rate."""
    rng = np.random.default_rng(RNG_SEED)
    truth = rng.integers(0, 2, 400)
    score = truth + rng.normal(0, 1, 400)
    fpr, tpr, _ = roc_curve(truth, score)
    rows = tuple((str(x), str(y)) for x, y in zip(fpr, tpr, strict=True))
    head = RepoState("PR", plots={"roc": PlotTable(("fpr", "tpr"), rows)})
    [plot], _ = render_plots(RepoState("main"), head, Path("unused"), ("mermaid",))
    _, line = series(plot.chart)
    for x, y in zip(np.linspace(0, 1, mermaid.GRID_POINTS), line, strict=True):
        assert y == pytest.approx(tpr[fpr <= x + 1e-12].max(), abs=0.002)
    assert plot.note == "no base data"
    assert plot.caption.startswith("Lines in order: chance, PR.")


def test_regression_residuals_are_sorted_quantiles_against_zero() -> None:
    base, head = states("regression")
    plots, warnings = render_plots(base, head, Path("unused"), ("mermaid",))
    assert warnings == []
    predictions, residuals = plots
    assert (predictions.chart, predictions.file, predictions.matrices) == ("", "", ())
    assert '    x-axis "Share of test rows below (percent)" 2 --> 98' in residuals.chart
    zero, base_line, pr_line = series(residuals.chart)
    assert zero == [0] * len(mermaid.QUANTILE_LEVELS)
    for line in (base_line, pr_line):
        assert line == sorted(line)
        assert line[0] < 0 < line[-1]
    # the PR model's errors are half as wide: its spread between 2 % and 98 % is narrower
    assert pr_line[-1] - pr_line[0] < 0.7 * (base_line[-1] - base_line[0])
    markdown = _report_markdown(plots)
    assert "_A scatter plot: not drawn in the comment (`--plots png` draws it)._" in markdown
    assert "Lines in order: zero (a perfect model), base, PR." in markdown


def test_non_finite_points_are_dropped_and_a_table_of_none_is_refused() -> None:
    roc = PlotTable(("fpr", "tpr"), (("0", "0"), ("nan", "0.5"), ("0.5", "inf"), ("1", "1")))
    empty = PlotTable(("fpr", "tpr"), (("nan", "nan"),))
    plots, warnings = render_plots(
        RepoState("main", plots={"roc": empty}),
        RepoState("PR", plots={"roc": roc}),
        Path("unused"),
        ("mermaid",),
    )
    assert series(plots[0].chart)[1] == pytest.approx(list(np.linspace(0, 1, mermaid.GRID_POINTS)))
    assert warnings == []
    plots, warnings = render_plots(
        RepoState("main"), RepoState("PR", plots={"roc": empty}), Path("unused"), ("mermaid",)
    )
    assert (plots, warnings) == ([], ["plot roc: not rendered: no finite values in 'fpr'/'tpr'"])


def test_declared_titles_reach_the_chart_only_as_safe_text() -> None:
    declared = PlotDecl(
        "plots/loss.csv",
        kind="curve",
        x="step",
        y="loss",
        title='Loss"]\n    click A "https://evil"',
        x_label="%%{init: {}}%%",
        y_label="<b>loss</b>",
    )
    curve = PlotTable(("step", "loss"), tuple((str(i), str(10 - i)) for i in range(10)))
    head = RepoState("PR", plots={"loss": curve}, plot_specs={"loss": declared})
    [plot], _ = render_plots(RepoState("main"), head, Path("unused"), ("mermaid",))
    lines = plot.chart.splitlines()
    assert lines[2] == '    title "Loss click A https: evil"'
    assert lines[3] == '    x-axis "init:" 0 --> 9'
    assert lines[4] == '    y-axis "b loss b" 1 --> 10'
    assert len(lines) == 7  # no reference line for a curve modelci does not know; one series


def _report_markdown(plots: list[Plot]) -> str:
    report = build_report(RepoState("main"), RepoState("PR"), {"acc": MetricRule(min=0.5)})
    report.plots = plots
    return render_markdown(report)[0]


def test_confusion_table_rows_actual_columns_predicted_cells_base_to_pr() -> None:
    plot = Plot(
        "confusion",
        "",
        "Confusion matrix",
        labels=("cat", "dog|x"),
        matrices=(("base", ((5, 1), (2, 7))), ("PR", ((6, 0), (1, 8)))),
    )
    markdown = _report_markdown([plot])
    assert "_Counts base → PR; the diagonal (bold) counts the right predictions._" in markdown
    assert "| actual ↓ predicted → | cat | dog\\|x |" in markdown
    assert "| **cat** | **5 → 6** | 1 → 0 |" in markdown
    assert "| **dog\\|x** | 2 → 1 | **7 → 8** |" in markdown
    many = [str(i) for i in range(13)]
    zeros = tuple((0,) * 13 for _ in many)
    big = Plot("confusion", "", "Confusion matrix", labels=tuple(many), matrices=(("PR", zeros),))
    assert "_13 classes: too many for a table (`--plots png` draws them)._" in _report_markdown(
        [big]
    )


def test_png_and_both_keep_the_images(tmp_path: Path) -> None:
    base, head = states("binary")
    both, _ = render_plots(base, head, tmp_path, ("mermaid", "png"))
    assert all(p.file == f"plots/{p.name}.png" for p in both)
    assert all((tmp_path / f"{p.name}.png").is_file() for p in both)
    assert all(p.chart for p in both[:2])
    markdown = _report_markdown(both)
    assert markdown.count("```mermaid\n") == 2
    assert markdown.count("](plots/") == 3

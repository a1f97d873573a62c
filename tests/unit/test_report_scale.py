"""The PR report draws what it reads from every row, at any size (issue 14): a 10^6-row
confusion table (the per-row format a base branch may still hold) is counted exactly."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest

from modelci.ci.plots import confusion_counts, confusion_figure, render_plots
from modelci.ci.state import MAX_PLOT_ROWS, RepoState, parse_plot_csv

pytestmark = pytest.mark.unit

ROWS = 1_000_000
assert ROWS > MAX_PLOT_ROWS  # the size the report used to cut at


def per_row_confusion() -> tuple[bytes, dict[tuple[str, str], int]]:
    rng = np.random.default_rng(1)
    actual = rng.integers(0, 2, ROWS)
    predicted = np.where(rng.random(ROWS) < 0.8, actual, 1 - actual)
    # rows ordered so that a prefix would be badly wrong: every actual 0 first
    order = np.argsort(actual, kind="stable")
    actual, predicted = actual[order], predicted[order]
    text = "actual,predicted\n" + "".join(
        f"{a},{p}\n" for a, p in zip(actual.tolist(), predicted.tolist(), strict=True)
    )
    expected = {
        (str(a), str(p)): int(np.sum((actual == a) & (predicted == p)))
        for a in (0, 1)
        for p in (0, 1)
    }
    return text.encode(), expected


def test_confusion_counts_every_row_of_a_million_row_table(tmp_path: Path) -> None:
    data, expected = per_row_confusion()
    base = parse_plot_csv(data, "plots/confusion.csv")
    assert base.row_count == ROWS
    assert confusion_counts(base, "actual", "predicted") == expected

    counts_file = "actual,predicted,count\n" + "".join(
        f"{a},{p},{n}\n" for (a, p), n in expected.items()
    )
    head = parse_plot_csv(counts_file.encode(), "plots/confusion.csv")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = confusion_figure(plt, [("base", base), ("PR", head)], "actual", "predicted", "CM")
    try:
        titles = [axis.get_title() for axis in figure.axes]
    finally:
        plt.close(figure)
    assert titles == [f"base ({ROWS} rows)", f"PR ({ROWS} rows)"]

    plots, warnings = render_plots(
        RepoState("base", plots={"confusion": base}),
        RepoState("PR", plots={"confusion": head}),
        tmp_path,
    )
    assert warnings == []
    assert [(plot.name, plot.note) for plot in plots] == [("confusion", "")]  # nothing sampled


def test_a_sampled_curve_says_how_many_rows_it_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelci.ci.state.MAX_PLOT_ROWS", 100)
    lines = "".join(f"{i / 999},{(i / 999) ** 0.5}\n" for i in range(1000))
    roc = parse_plot_csv(f"fpr,tpr\n{lines}".encode(), "plots/roc.csv")
    plots, _ = render_plots(RepoState("base"), RepoState("PR", plots={"roc": roc}), tmp_path)
    assert plots[0].note == f"no base data; PR: {len(roc.rows)} of 1000 rows drawn, evenly spread"
    assert roc.rows[-1][0] > "0.9"  # the sample reaches the end of the file

"""The report on hand-made states: diffs, verdicts, escaping, size bound, plots, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelci.ci.diff import diff_params, metric_rows
from modelci.ci.plots import PlotDataError, confusion_counts, render_plots, safe_label
from modelci.ci.report import (
    GITHUB_COMMENT_LIMIT,
    MARKER,
    build_report,
    compute_runs,
    dumps_json,
    render_markdown,
    to_json,
)
from modelci.ci.state import PlotTable, RepoState
from modelci.config import MetricRule
from modelci.dvcfiles import DvcLock, parse_lock
from modelci.judge.markdown import escape

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n"
RULES = {
    "accuracy": MetricRule(min=0.75, tolerance=0.02),
    "log_loss": MetricRule(max=0.55, tolerance=0.03, higher_is_better=False),
}
DIRECTIONS = {"accuracy": True, "log_loss": False, "recall": True}


def lock(model_md5: str = "a" * 32, data_md5: str = "b" * 32) -> DvcLock:
    return parse_lock(
        {
            "schema": "2.0",
            "stages": {
                "prepare": {
                    "cmd": "modelci prepare",
                    "deps": [{"path": "data/raw.csv", "md5": data_md5}],
                    "outs": [{"path": "data/prepared/train.parquet", "md5": data_md5[::-1]}],
                },
                "train": {
                    "cmd": "modelci train",
                    "deps": [{"path": "data/prepared/train.parquet", "md5": data_md5[::-1]}],
                    "outs": [{"path": "models/model.skops", "md5": model_md5}],
                },
            },
        }
    )


def state(label: str, **changes: object) -> RepoState:
    values: dict[str, object] = {
        "metrics": {"accuracy": 0.80, "log_loss": 0.45, "recall": 0.6},
        "params": {"train": {"estimator_params": {"learning_rate": 0.05}, "seed": 42}},
        "lock": lock(),
        "profile": {
            "rows": {"train": 1000, "test": 250, "total": 1250},
            "columns": {"age": "float", "sex": "category"},
        },
        "model_sha256": "f" * 64,
    }
    values.update(changes)
    return RepoState(label=label, **values)  # type: ignore[arg-type]


def report_for(head: RepoState, base: RepoState | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    return build_report(base or state("main"), head, RULES, directions=DIRECTIONS, **kwargs)  # type: ignore[arg-type]


def test_improvement() -> None:
    head = state("PR", metrics={"accuracy": 0.83, "log_loss": 0.40, "recall": 0.6})
    report = report_for(head)
    rows = {row.name: row for row in report.metrics}
    assert rows["accuracy"].change == "improved"
    assert rows["log_loss"].change == "improved"  # lower is better
    assert rows["recall"].change == "unchanged"
    assert rows["recall"].gate is None
    markdown, truncated = render_markdown(report)
    assert not truncated
    assert markdown.startswith(MARKER + "\n## 🟢 modelci report: gate passed (2 metrics checked)")
    assert (
        "| **accuracy** | 0.8000 | 0.8300 | +0.0300 | - | - | ▲ improved | higher is better "
        "| ✅ pass |" in markdown
    )
    assert (
        "| **log\\_loss** | 0.4500 | 0.4000 | -0.0500 | - | - | ▲ improved | lower is better |"
        in markdown
    )
    assert (
        "| **recall** | 0.6000 | 0.6000 | +0.0000 | - | - | = unchanged | higher is better "
        "| not gated |" in markdown
    )
    assert f"sha256 `{'f' * 64}` (unchanged)" in markdown


def test_regression_within_tolerance_passes() -> None:
    report = report_for(state("PR", metrics={"accuracy": 0.79, "log_loss": 0.46}))
    markdown, _ = render_markdown(report)
    assert report.verdict.passed
    assert (
        "| **accuracy** | 0.8000 | 0.7900 | -0.0100 | - | - | ▼ regressed | higher is better | "
        "✅ pass: regressed by 0.0100, within the tolerance 0.0200 |"
    ) in (markdown)
    assert "Gate failures" not in markdown


def test_regression_beyond_tolerance_fails_and_names_metric() -> None:
    report = report_for(state("PR", metrics={"accuracy": 0.70, "log_loss": 0.45}))
    markdown, _ = render_markdown(report)
    assert not report.verdict.passed
    assert "## 🔴 modelci report: gate FAILED: accuracy:" in markdown
    assert "**Gate failures:**" in markdown
    assert "- accuracy: 0.7000 is below the minimum 0.7500 by 0.0500" in markdown
    assert "regressed by 0.1000 against the baseline 0.8000" in markdown
    # failing metrics come first in the table
    table = markdown.split("### Metrics")[1]
    assert table.index("**accuracy**") < table.index("**log\\_loss**")
    assert to_json(report)["gate"]["passed"] is False


def test_new_and_removed_metrics() -> None:
    base = state("main", metrics={"accuracy": 0.8, "log_loss": 0.45, "recall": 0.6})
    head = state("PR", metrics={"accuracy": 0.8, "log_loss": 0.45, "f1": 0.7})
    report = report_for(head, base)
    rows = {row.name: row for row in report.metrics}
    assert rows["f1"].change == "new"
    assert rows["recall"].change == "removed"
    markdown, _ = render_markdown(report)
    assert (
        "| **f1** | new | 0.7000 | - | - | - | 🆕 new | higher is better | not gated |" in markdown
    )
    assert "| **recall** | 0.6000 | removed | - | - | - | 🗑️ removed |" in markdown


def test_new_gated_metric_without_baseline_says_bounds_only() -> None:
    report = report_for(state("PR"), state("main", metrics=None))
    markdown, _ = render_markdown(report)
    assert "✅ pass: new: no baseline, judged on absolute bounds only" in markdown
    assert "no baseline metrics: every metric is new and judged on bounds only" in markdown


def test_nan_metric_fails_and_json_stays_strict() -> None:
    report = report_for(state("PR", metrics={"accuracy": math.nan, "log_loss": 0.45}))
    rows = {row.name: row for row in report.metrics}
    assert rows["accuracy"].change == "invalid"
    assert report.verdict.failures[0] == "accuracy: value is NaN"
    markdown, _ = render_markdown(report)
    assert "| **accuracy** | 0.8000 | NaN | - | - | - | ⚠️ invalid |" in markdown
    payload = json.loads(dumps_json(to_json(report)))
    assert payload["metrics"][0]["head"] == "NaN"


def test_empty_diff() -> None:
    report = report_for(state("PR"))
    assert report.params == []
    assert report.data["columns"] == []
    assert report.data["hashes"] == []
    assert all(row.change == "unchanged" for row in report.metrics)
    markdown, truncated = render_markdown(report)
    assert not truncated
    for text in (
        "No params changed.",
        "Schema unchanged.",
        "No content hash changed in dvc.lock.",
        "No plots.",
    ):
        assert text in markdown
    assert "| test | 250 | 250 | +0 |" in markdown


def test_params_are_flattened_with_old_and_new_values() -> None:
    changes = diff_params(
        {"train": {"lr": 0.05, "layers": [1, 2]}, "old": {"x": 1}},
        {"train": {"lr": 0.1, "layers": [1, 2, 3]}, "new": True},
    )
    assert [(c.key, c.base, c.head, c.change) for c in changes] == [
        ("new", None, True, "added"),
        ("old.x", 1, None, "removed"),
        ("train.layers", [1, 2], [1, 2, 3], "changed"),
        ("train.lr", 0.05, 0.1, "changed"),
    ]
    head = state("PR", params={"train": {"estimator_params": {"learning_rate": 0.1}, "seed": 42}})
    markdown, _ = render_markdown(report_for(head))
    assert "1 param changed (old → new):" in markdown
    assert "| train.estimator\\_params.learning\\_rate | 0.05 | 0.1 |" in markdown


def test_data_changes_rows_schema_and_hashes() -> None:
    head = state(
        "PR",
        profile={
            "rows": {"train": 1100, "test": 250, "total": 1350},
            "columns": {"age": "int", "fare": "float"},
        },
        lock=lock(model_md5="c" * 32, data_md5="d" * 32),
    )
    report = report_for(head)
    columns = {(c.name, c.change) for c in report.data["columns"]}
    assert columns == {("age", "changed"), ("fare", "added"), ("sex", "removed")}
    hashes = {(h.group, h.name) for h in report.data["hashes"]}
    assert ("train", "out models/model.skops") in hashes
    assert ("prepare", "dep data/raw.csv") in hashes
    assert report.model["changed"] is True
    markdown, _ = render_markdown(report)
    assert "| train | 1000 | 1100 | +100 |" in markdown
    assert "| age | float | int | changed |" in markdown
    assert "| train | out models/model.skops | aaaaaaaaaaaa | cccccccccccc | changed |" in markdown
    assert "(changed)" in markdown


def test_gate_rule_changes_are_flagged() -> None:
    head = state("PR", params={"gate": {"metrics": {"accuracy": {"min": 0.1}}}})
    base = state("main", params={"gate": {"metrics": {"accuracy": {"min": 0.75}}}})
    report = report_for(head, base)
    assert any("this PR changes the gate rules" in warning for warning in report.warnings)


def test_missing_files_become_failures_and_warnings() -> None:
    head = state(
        "PR",
        metrics=None,
        profile=None,
        lock=None,
        model_sha256=None,
        problems=["metrics.json: not found in working tree"],
    )
    report = report_for(head)
    assert not report.verdict.passed
    assert report.verdict.failures == ["metrics.json: missing or unreadable in PR"]
    markdown, _ = render_markdown(report)
    assert "**Model evaluated:** models/model.skops (not found)" in markdown
    assert "| train | 1000 | - | - |" in markdown  # profile.json missing in the PR
    assert "- PR: metrics.json: not found in working tree" in markdown
    assert "| **recall** | 0.6000 | removed |" in markdown


def test_untrusted_title_and_names_are_escaped() -> None:
    title = "x<script>alert(1)</script> | `rm -rf` ${{ github.token }} @octocat $$\\int$$\n# h"
    head = state("PR", metrics={"accuracy": 0.8, "log_loss": 0.45, "<img src=x>|*a*": 1.0})
    markdown, _ = render_markdown(report_for(head, title=title))
    title_line = next(line for line in markdown.splitlines() if line.startswith("**PR:**"))
    assert "<script>" not in markdown
    assert "<img" not in markdown
    assert "&lt;script&gt;" in title_line
    assert "\\|" in title_line
    assert "\\`rm -rf\\`" in title_line
    assert "@\u200boctocat" in title_line
    assert "\\$\\$" in title_line
    assert "\n# h" not in markdown  # no new line: the title cannot start a heading
    assert "| **&lt;img src=x&gt;\\|\\*a\\*** |" in markdown


@given(st.text(max_size=300))
def test_escape_is_one_inert_bounded_line(text: str) -> None:
    out = escape(text, 100)
    assert "\n" not in out
    assert "\r" not in out
    assert "<" not in out
    assert ">" not in out
    assert len(out) <= 100 * 6
    for index, char in enumerate(out):
        if char in "|`*_[]$":
            assert out[index - 1] == "\\"


def test_huge_input_stays_under_the_comment_limit() -> None:
    big = "|<@x>`" * 500
    head = state(
        "PR" + big,
        metrics={f"metric_{i}_{big}": float(i) for i in range(3000)},
        params={f"p{i}": {"value": big, "list": list(range(50))} for i in range(5000)},
        profile={
            "rows": {f"split{i}": i for i in range(2000)},
            "columns": {f"c{i}{big}": "float" for i in range(2000)},
        },
        problems=[f"problem {i} {big}" for i in range(2000)],
    )
    report = report_for(head, title=big * 10)
    markdown, truncated = render_markdown(report)
    assert truncated
    assert len(markdown) <= 60_000
    assert "more metrics omitted (see report.json)" in markdown
    assert "more params omitted" in markdown
    small, small_truncated = render_markdown(report, max_chars=1_000)
    assert small_truncated
    assert len(small) <= 1_000
    # a bound above GitHub's limit is clamped to it
    huge, _ = render_markdown(report, max_chars=10**9)
    assert len(huge) <= GITHUB_COMMENT_LIMIT


def test_json_report_is_strict_and_complete() -> None:
    report = report_for(state("PR", metrics={"accuracy": math.inf, "log_loss": 0.45}), title="t")
    payload = json.loads(dumps_json(to_json(report, {"chars": 10})))
    assert set(payload) >= {
        "version",
        "title",
        "base",
        "head",
        "model",
        "gate",
        "metrics",
        "params",
        "data",
        "plots",
        "warnings",
        "markdown",
    }
    assert payload["gate"]["status"] == "fail"
    assert payload["model"]["sha256"] == "f" * 64
    assert payload["metrics"][0]["head"] == "Infinity"


def test_metric_direction_falls_back_to_known_names_then_higher() -> None:
    rows = metric_rows(
        {"rmse": 2.0, "custom": 1.0}, {"rmse": 1.0, "custom": 0.5}, None, {"rmse": False}
    )
    changes = {row.name: (row.higher_is_better, row.change) for row in rows}
    assert changes == {"custom": (True, "regressed"), "rmse": (False, "improved")}


def table(columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> PlotTable:
    return PlotTable(columns, tuple(tuple(str(v) for v in row) for row in rows))


def test_classification_plots_are_valid_pngs(tmp_path: Path) -> None:
    roc = table(("fpr", "tpr"), [(0, 0), (0.2, 0.6), (1, 1)])
    confusion = table(("actual", "predicted"), [(1, 1), (0, 0), (1, 0), ("$x$", "0")])
    base = state("main", plots={"roc": roc, "confusion": confusion})
    head = state(
        "PR",
        plots={
            "roc": table(("fpr", "tpr"), [(0, 0), (0.1, 0.7), (1, 1)]),
            "precision_recall": table(("recall", "precision"), [(1, 0.3), (0.5, 0.8), (0, 1)]),
            "confusion": confusion,
            "mystery": table(("a",), [(1,)]),
        },
    )
    plots, warnings = render_plots(base, head, tmp_path)
    assert [plot.name for plot in plots] == ["roc", "precision_recall", "confusion"]
    assert {plot.file for plot in plots} == {
        "plots/roc.png",
        "plots/precision_recall.png",
        "plots/confusion.png",
    }
    assert plots[1].note == "no base data"
    for plot in plots:
        assert (tmp_path / f"{plot.name}.png").read_bytes().startswith(PNG)
    assert warnings == [
        "plot mystery: no renderer (declare its x, y and template in dvc.yaml), skipped"
    ]


def test_confusion_counts_table_and_row_table_agree() -> None:
    """evaluate writes counts; a base branch from before that has one line per test row."""
    per_row = table(("actual", "predicted"), [(1, 1), (0, 0), (1, 0), (1, 1), (0, 0), (0, 0)])
    counts = table(("actual", "predicted", "count"), [(0, 0, 3), (0, 1, 0), (1, 0, 1), (1, 1, 2)])
    expected = {("0", "0"): 3, ("0", "1"): 0, ("1", "0"): 1, ("1", "1"): 2}
    assert confusion_counts(counts, "actual", "predicted") == expected
    assert confusion_counts(per_row, "actual", "predicted") == {
        pair: n for pair, n in expected.items() if n
    }


@pytest.mark.parametrize("bad", ["-1", "2.5", "many"])
def test_confusion_count_must_be_a_count(bad: str) -> None:
    counts = table(("actual", "predicted", "count"), [(0, 0, 3), (0, 1, bad)])
    with pytest.raises(PlotDataError, match=f"'count' is not a count: '{bad}'"):
        confusion_counts(counts, "actual", "predicted")


def test_regression_plots_and_bad_plot_data(tmp_path: Path) -> None:
    predictions = table(("actual", "predicted"), [(i, i * 1.1) for i in range(50)])
    residuals = table(("predicted", "residual"), [(i, (-1) ** i) for i in range(50)])
    bad = table(("actual", "predicted"), [(1, "oops")])
    plots, warnings = render_plots(
        state("main", plots={"predictions": predictions, "residuals": bad}),
        state("PR", plots={"predictions": predictions, "residuals": residuals}),
        tmp_path,
    )
    assert [plot.name for plot in plots] == ["predictions"]
    assert (tmp_path / "predictions.png").read_bytes().startswith(PNG)
    assert warnings == [
        "plot residuals: not rendered: missing column 'residual' (has ['actual', 'predicted'])"
    ]


def test_plot_labels_are_safe_for_mathtext() -> None:
    assert safe_label("$\\frac{a}{b}$") == "\\$\\\\frac{a}{b}\\$"
    assert safe_label("x" * 100, 10) == "x" * 9 + "…"


def test_where_the_pipeline_ran_on_dask_is_a_section() -> None:
    report = report_for(state("PR", metrics={"accuracy": 0.9}))
    assert "### Compute" not in render_markdown(report)[0]
    report.compute = compute_runs(
        json.dumps(
            {
                "train": {
                    "engine": "dask",
                    "workers": 2,
                    "partitions": 8,
                    "seconds": 12.5,
                    "dashboard": "http://127.0.0.1:8787/status",
                },
                "evil": "| not an entry",
            }
        )
    )
    markdown = render_markdown(report)[0]
    # the link is shown defused, like every value a PR's run wrote
    link = escape("http://127.0.0.1:8787/status", 200)
    assert f"| train | dask | 2 | 8 | 12.5 s | {link} |" in markdown
    assert "evil" not in markdown
    assert to_json(report)["compute"]["train"]["workers"] == 2
    assert compute_runs("not json") == {}
    assert compute_runs("[1]") == {}

"""The comment job's Mermaid whitelist (``mermaid_blocks`` in modelci_comment.py): a ```mermaid
block reaches the comment only if it is exactly a chart the report writes; every other block that
Mermaid could render is removed with a note, whatever fence, case, indentation or container."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from modelci.ci.plots import render_plots
from modelci.ci.state import PlotTable, RepoState
from modelci.dvcfiles import PlotDecl
from tests.workflows.test_comment_validator import comment_of, mc

pytestmark = pytest.mark.workflows

NUMBERS = ", ".join(f"{v:.3g}" for v in np.linspace(0, 1, 51))
CHART = f"""```mermaid
xychart-beta
    title "ROC curve (micro-average, one-vs-rest)"
    x-axis "False positive rate" 0 --> 1
    y-axis "True positive rate" 0 --> 1
    line [{NUMBERS}]
    line [0.1, 0.5, -1.25, 1]
```"""
BODY = CHART.split("\n")[1:-1]


def sanitized(text: str) -> str:
    return mc.sanitize_markdown(text, set())


def test_a_report_chart_is_kept_byte_for_byte(tmp_path: Path) -> None:
    text = f"### Plots\n\n**ROC curve**\n\n{CHART}\n\n_Lines in order: chance, PR._\n"
    assert sanitized(text) == text
    assert CHART in comment_of(tmp_path, text)


def _decl(title: str) -> PlotDecl:
    return PlotDecl("plots/x.csv", kind="curve", x="step", y="loss", title=title, x_label=title)


def test_every_chart_the_report_writes_passes_the_whitelist() -> None:
    """The report's writer (src/modelci/ci/mermaid.py) and this whitelist agree, on curves,
    residuals, wide ranges and hostile declared titles."""
    rng = np.random.default_rng(3)
    curve = PlotTable(("step", "loss"), tuple((str(i * 1e6), str(-(i**3))) for i in range(40)))
    roc = PlotTable(("fpr", "tpr"), (("0", "0"), ("0", "0.3"), ("0.2", "0.9"), ("1", "1")))
    pr = PlotTable(("recall", "precision"), (("1", "0.2"), ("0.4", "0.9"), ("0", "1")))
    residual = PlotTable(
        ("predicted", "residual"), tuple(("1", str(v)) for v in rng.normal(0, 3e4, 500))
    )
    hostile = 'x" ]\n    click A call alert() %%{init}%% <img src=x> ' + "w" * 200
    head = RepoState(
        "PR",
        plots={"roc": roc, "precision_recall": pr, "residuals": residual, "x": curve},
        plot_specs={"x": _decl(hostile)},
    )
    base = RepoState("main", plots={"roc": roc, "residuals": residual})
    plots, warnings = render_plots(base, head, Path("unused"), ("mermaid",))
    assert warnings == []
    charts = [plot.chart for plot in plots if plot.chart]
    assert len(charts) == 4
    text = "\n\n".join(charts) + "\n"
    assert sanitized(text) == text


HOSTILE = {
    "flowchart-click": '```mermaid\nflowchart LR\n    A-->B\n    click A "https://evil.example"\n```',
    "init-directive": "```mermaid\n%%{init: {'securityLevel': 'loose'}}%%\n"
    + "\n".join(BODY)
    + "\n```",
    "front-matter": "```mermaid\n---\nconfig:\n  securityLevel: loose\n---\n"
    + "\n".join(BODY)
    + "\n```",
    "html-title": CHART.replace("ROC curve (micro-average, one-vs-rest)", "<img src=x onerror=1>"),
    "quote-in-title": CHART.replace("ROC curve", 'ROC" click "x'),
    "long-title": CHART.replace("ROC curve", "R" * 60),
    "acc-title": CHART.replace("xychart-beta\n", "xychart-beta\n    accTitle: hi\n"),
    "comment-line": CHART.replace("xychart-beta\n", "xychart-beta\n    %% note\n"),
    "too-many-numbers": CHART.replace("0.1, 0.5", ", ".join(["0.1"] * 101)),
    "too-many-series": CHART.replace("\n```", ("\n    line [1, 2]" * 4) + "\n```"),
    "no-series": "```mermaid\n" + "\n".join(BODY[:4]) + "\n```",
    "bar-series": CHART.replace("    line [0.1", "    bar [0.1"),
    "band-axis": CHART.replace('x-axis "False positive rate" 0 --> 1', "x-axis [a, b]"),
    "exponent": CHART.replace("0.5, -1.25", "5e3, -1.25"),
    "four-decimals": CHART.replace("0.5, -1.25", "0.5001, -1.25"),
    "blank-line": CHART.replace("xychart-beta\n", "xychart-beta\n\n"),
    "trailing-space": CHART.replace("xychart-beta\n", "xychart-beta \n"),
    "tab-indent": CHART.replace("    title", "\ttitle"),
    "swapped-order": "```mermaid\n" + "\n".join([BODY[0], BODY[2], BODY[1], *BODY[3:]]) + "\n```",
    "tilde-fence": CHART.replace("```mermaid", "~~~mermaid").replace("\n```", "\n~~~"),
    "long-fence": CHART.replace("```mermaid", "````mermaid").replace("\n```", "\n````"),
    "indented-fence": CHART.replace("```mermaid", "   ```mermaid"),
    "quoted-fence": "\n".join("> " + line for line in CHART.split("\n")),
    "list-fence": "- " + CHART.replace("\n", "\n  "),
    "upper-case": CHART.replace("```mermaid", "```Mermaid"),
    "info-string": CHART.replace("```mermaid", "```mermaid {init}"),
    "closed-by-long-fence": CHART.replace("\n```", "\n````"),
    "unclosed": "```mermaid\n" + "\n".join(BODY) + "\nclick A evil",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_any_other_mermaid_block_is_removed_with_a_note(name: str) -> None:
    text = f"before\n\n{HOSTILE[name]}\n\nafter\n"
    result = sanitized(text)
    assert mc.MERMAID_REMOVED in result
    assert "mermaid" not in result.replace(mc.MERMAID_REMOVED, "").lower()
    for needle in ("click", "init", "img", "xychart", "line ["):
        assert needle not in result.replace(mc.MERMAID_REMOVED, "")
    assert result.startswith("before\n")
    assert result.endswith("after\n") or name == "unclosed"


def test_a_removed_block_does_not_take_the_next_chart_with_it() -> None:
    text = f"{HOSTILE['flowchart-click']}\ntext\n{CHART}\n"
    assert sanitized(text) == f"{mc.MERMAID_REMOVED}\ntext\n{CHART}\n"


@pytest.mark.parametrize(
    "text",
    ["`" * 200_000 + "mermaid", "```mermaid\n" * 50_000, ("```mermaid\n" + "\n".join(BODY)) * 4000],
    ids=["one-fence-line", "openers", "unclosed-charts"],
)
def test_the_scan_is_linear(text: str) -> None:
    started = time.perf_counter()
    result = mc.mermaid_blocks(text)
    assert time.perf_counter() - started < 5
    assert "xychart" not in result


def test_a_cut_never_leaves_half_a_chart() -> None:
    text = "### Plots\n\n" + CHART + "\n\ntail\n"
    for limit in range(120, len(text) + 120, 17):
        cut = mc.truncate(text + "x" * 200, limit)
        fences = [line for line in cut.splitlines() if line.startswith("```")]
        assert len(fences) % 2 == 0, (limit, cut)
        assert len(cut) <= limit

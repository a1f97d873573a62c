"""Several models in one pull request: the merged comment and the combined gate, from plan JSON
fixtures (``modelci affected``'s contract) and hand-made report folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelci.ci import merge as m
from modelci.cli import main
from modelci.errors import ConfigError

pytestmark = pytest.mark.unit

CHART = "\n".join(
    [
        "```mermaid",
        "xychart-beta",
        '    title "ROC curve"',
        '    x-axis "false positive rate" 0 --> 1',
        '    y-axis "true positive rate" 0 --> 1',
        "    line [0, 0.5, 1]",
        "```",
    ]
)


def plan(*projects: tuple[str, bool], reason: str = "params.yaml changed") -> dict[str, Any]:
    entries = [
        {
            "path": f"models/{name}",
            "name": name,
            "registered_model": f"acme-{name}",
            "affected": affected,
            "reason": reason if affected else "nothing it depends on changed",
        }
        for name, affected in projects
    ]
    include = [{"path": e["path"], "name": e["name"]} for e in entries if e["affected"]]
    return {"projects": entries, "matrix": {"include": include}, "count": len(include)}


def verdict(passed: bool, delta: float = 0.01) -> dict[str, Any]:
    interval = {"low": -0.004, "high": 0.024, "level": 0.95, "significant": False}
    metric = {"name": "accuracy", "status": "pass" if passed else "fail", "current": 0.81}
    metric |= {"delta": delta, "interval": interval}
    summary = "gate passed (1 metrics checked)" if passed else "gate FAILED: accuracy: too low"
    return {"passed": passed, "summary": summary, "metrics": [metric]}


def report_folder(
    root: Path, name: str, passed: bool = True, body: str = "", stages: Any = None
) -> Path:
    folder = root / f"modelci-report-{name}"
    folder.mkdir(parents=True)
    text = f"{m.MARKER}\n## 🟢 modelci report: {name}\n\n{body or 'all good'}\n\n{CHART}\n"
    (folder / "report.md").write_text(text, encoding="utf-8")
    (folder / "verdict.json").write_text(json.dumps(verdict(passed)), encoding="utf-8")
    if stages is not None:
        (folder / "stages.json").write_text(json.dumps({"stages": stages}), encoding="utf-8")
    return folder


def write_plan(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def merged(tmp_path: Path, data: dict[str, Any], limit: int | None = None) -> m.Merged:
    projects = m.load_plan(write_plan(tmp_path, data))
    results = m.read_results(projects, tmp_path / "reports", "modelci-report-")
    return m.merge_reports(projects, results, *([limit] if limit else []))


def test_summary_row_per_model_and_a_section_per_model_that_ran(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    report_folder(reports, "fraud", stages=[{"name": "train", "status": "ran", "seconds": 90}])
    report_folder(reports, "churn", passed=False)
    out = merged(tmp_path, plan(("fraud", True), ("churn", True), ("forecast", False)))
    text = out.comment
    assert text.startswith(m.MARKER)
    assert text.count(m.MARKER) == 1  # each report's own marker is dropped
    assert "1 of 2 affected models passed the gate (1 unchanged)" in text
    rows = [line for line in text.splitlines() if line.startswith("| **")]
    assert [row.split("|")[1].strip() for row in rows] == ["**churn**", "**fraud**", "**forecast**"]
    assert "| **forecast** | unchanged | nothing it depends on changed | not run |" in text
    assert "🔴 fail" in rows[0]
    assert "accuracy 0.81" in rows[0]
    assert "+0.0100 | -0.0040 to +0.0240 (95%)" in rows[1]
    assert text.count("<details>") == 2
    assert text.count("</details>") == 2
    assert "<summary>fraud: 🟢 pass, ran</summary>" in text
    assert "- `train`: ran (1.5 min)" in text
    assert text.count(CHART) == 2
    assert out.summary == text
    assert not out.omitted


def test_no_model_affected(tmp_path: Path) -> None:
    out = merged(tmp_path, plan(("fraud", False), ("churn", False)))
    assert "no model affected (2 unchanged)" in out.comment
    assert "<details>" not in out.comment


def test_a_report_cannot_close_its_section(tmp_path: Path) -> None:
    body = "</details>\n<details>\n<summary>fake</summary>"
    report_folder(tmp_path / "reports", "fraud", body=body)
    text = merged(tmp_path, plan(("fraud", True))).comment
    assert text.count("</details>") == 1
    assert text.count("<summary>") == 1
    assert "&lt;/details>" in text


def test_a_missing_report_is_named(tmp_path: Path) -> None:
    text = merged(tmp_path, plan(("fraud", True))).comment
    assert "| **fraud** | ⚠️ the job left no report |" in text
    assert "❌ no report" in text


@pytest.mark.parametrize("count", [3, 40, 400])
def test_the_comment_fits_whatever_the_number_of_models(tmp_path: Path, count: int) -> None:
    """Large reports: sections that do not fit are left whole to the job summary, and no fenced
    block is cut; with hundreds of models the table rows that do not fit are named too."""
    filler = "\n".join(f"| row {i} | [x](y) @team #12 |" for i in range(700))
    names = [f"model{i:03d}" for i in range(count)]
    for name in names:
        report_folder(tmp_path / "reports", name, body=filler)
    out = merged(tmp_path, plan(*((name, True) for name in names)))
    assert m.comment_cost(out.comment) <= m.COMMENT_LIMIT - m.COMMENT_RESERVE
    assert out.comment.count("```") % 2 == 0
    assert out.comment.count("<details>") == out.comment.count("</details>")
    shown = out.comment.count("<details>")
    rows = out.comment.count("\n| **")
    assert shown < count
    assert shown >= 1 or rows == count or count == 400
    assert len(out.omitted) >= count - min(shown, rows)
    assert "in full in this run's job summary" in out.comment
    assert out.summary.count("\n| **") == count
    assert len(out.summary) <= m.SUMMARY_LIMIT
    if count <= 40:
        assert out.summary.count("<details>") == count
    else:  # the job summary has its own bound (1 MiB): the rest is in each model's artifact
        assert "in full in the report artifacts" in out.summary


def test_the_comment_passes_the_validator_unchanged_in_structure(tmp_path: Path) -> None:
    """The comment job's validator keeps ``<details>``/``<summary>`` and the charts, and does not
    cut the merged comment (its cost bound holds)."""
    from tests.workflows.test_comment_validator import mc

    filler = "\n".join(f"| row {i} | [x](y) <b> @team #12 www.x.org http://a |" for i in range(250))
    for name in ("a", "b", "c", "d"):
        report_folder(tmp_path / "reports", name, body=filler)
    out = merged(tmp_path, plan(*((name, True) for name in "abcd")))
    cleaned = mc.sanitize_markdown(out.comment, set())
    assert len(cleaned) <= m.comment_cost(out.comment) <= mc.MAX_COMMENT_CHARS - m.COMMENT_RESERVE
    assert "cut to" not in cleaned
    assert cleaned.count("<details>") == out.comment.count("<details>") >= 2
    assert cleaned.count(CHART) == out.comment.count(CHART)
    assert m.COMMENT_LIMIT == mc.MAX_COMMENT_CHARS


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "no 'projects' list"),
        ({"projects": [{"name": "a/b", "affected": True}]}, "'name' must be"),
        ({"projects": [{"name": "a", "affected": "yes"}]}, "'affected' must be"),
        ({"projects": [{"name": "a", "affected": True}] * 2}, "appears twice"),
    ],
)
def test_bad_plans_are_refused_in_one_line(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        m.load_plan(write_plan(tmp_path, data))


def test_gate_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    report_folder(reports, "fraud")
    report_folder(reports, "churn", passed=False)
    path = write_plan(tmp_path, plan(("fraud", True), ("churn", True), ("x", True), ("y", False)))
    code = main(["pr", "gate-all", "--plan", str(path), "--reports", str(reports)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines == [
        "fraud: gate passed (1 metrics checked)",
        "churn: gate FAILED: accuracy: too low",
        "x: FAILED: no gate verdict (its model job did not finish)",
        "y: not affected (nothing it depends on changed)",
        "1 of 3 affected models passed the gate: 2 FAILED",
    ]


def test_gate_all_passes_with_no_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_plan(tmp_path, plan(("fraud", False)))
    assert main(["pr", "gate-all", "--plan", str(path), "--reports", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "no model affected (1 projects unchanged): gate passed"
    )


def test_merge_reports_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report_folder(tmp_path / "reports", "fraud")
    path = write_plan(tmp_path, plan(("fraud", True)))
    out = tmp_path / "merged"
    args = ["pr", "merge-reports", "--plan", str(path), "--reports", str(tmp_path / "reports")]
    assert main([*args, "--out", str(out)]) == 0
    assert (out / "report.md").read_text(encoding="utf-8").startswith(m.MARKER)
    assert (out / "summary.md").is_file()
    assert "1 models, 1 affected" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("projects", "copied"),
    [((("fraud", True),), True), ((("fraud", True), ("churn", False)), False)],
    ids=["one-project", "several"],
)
def test_the_only_projects_report_json_is_where_release_reviewed_reads_it(
    tmp_path: Path, projects: tuple[tuple[str, bool], ...], copied: bool
) -> None:
    """One project: the merged artifact holds its report.json at the top, as before the matrix;
    several: none (release reads each project's own artifact)."""
    folder = report_folder(tmp_path / "reports", "fraud")
    (folder / "report.json").write_text('{"model": {"sha256": "%s"}}' % ("a" * 64), "utf-8")
    path = write_plan(tmp_path, plan(*projects))
    out = tmp_path / "merged"
    args = ["pr", "merge-reports", "--plan", str(path), "--reports", str(tmp_path / "reports")]
    assert main([*args, "--out", str(out)]) == 0
    merged = out / "report.json"
    assert merged.is_file() == copied
    if copied:
        assert merged.read_bytes() == (folder / "report.json").read_bytes()


def test_matrix_outputs(tmp_path: Path) -> None:
    path = write_plan(tmp_path, plan(("fraud", True), ("churn", False), ("x", True)))
    output = tmp_path / "github_output"
    assert main(["pr", "matrix", "--plan", str(path), "--github-output", str(output)]) == 0
    lines = output.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0].removeprefix("matrix=")) == {
        "include": [{"path": "models/fraud", "name": "fraud"}, {"path": "models/x", "name": "x"}]
    }
    assert lines[1] == "count=2"
    none = write_plan(tmp_path, plan(("docs", False)))
    assert m.matrix_outputs(none) == 'matrix={"include":[]}\ncount=0\n'


def test_restored_stages_say_the_time_they_saved(tmp_path: Path) -> None:
    stages = [
        {"name": "prepare", "status": "unchanged"},
        {"name": "train", "status": "restored", "saved_seconds": 540.0},
        {"name": "export", "status": "restored", "saved_seconds": None},
    ]
    report_folder(tmp_path / "reports", "fraud", stages=stages)
    text = merged(tmp_path, plan(("fraud", True))).comment
    assert "| **fraud** | restored from cache, 9.0 min saved |" in text
    assert "- `prepare`: unchanged" in text
    assert "- `train`: restored from cache, 9.0 minutes saved" in text
    assert "- `export`: restored from cache, time saved unknown" in text
    only_unchanged = m.ModelResult(stages=[{"name": "train", "status": "unchanged"}])
    assert m.status_text(only_unchanged) == "unchanged (outputs from the cache)"

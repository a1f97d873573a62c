"""The per-job table of ``benchmarks/bench_workflows_projects.py``: spans from act's ``--json``
entries, matrix jobs told apart by their project, and medians per case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_workflows_projects.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if not SCRIPT.is_file():  # the sdist ships tests/ but not benchmarks/
        pytest.skip(f"{SCRIPT.name} is not here (benchmarks/ is not in the sdist)")
    spec = importlib.util.spec_from_file_location("bench_workflows_projects", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def _entry(job: str, second: int, matrix: dict[str, str] | None = None) -> dict[str, object]:
    entry: dict[str, object] = {"jobID": job, "time": f"2026-12-08T02:40:{second:02d}Z"}
    if matrix is not None:
        entry["matrix"] = matrix
    return entry


def test_spans_tell_the_jobs_of_a_matrix_apart(bench: ModuleType) -> None:
    entries = [
        _entry("plan", 1),
        _entry("model", 5, {"path": "models/wine", "name": "wine"}),
        _entry("model", 6, {"path": ".", "name": "clinic"}),
        _entry("plan", 4),
        {"msg": "no job"},
        _entry("ci", 0),  # the caller's job: left out
        _entry("model", 30, {"path": "models/wine", "name": "wine"}),
        _entry("model", 20, {"path": ".", "name": "clinic"}),
        _entry("report", 31, {}),
        _entry("report", 33, {}),
    ]
    assert bench.job_spans(entries) == {
        "plan": 3.0,
        "model (wine)": 25.0,
        "model (clinic)": 14.0,
        "report": 2.0,
    }


def test_the_table_has_medians_per_case_and_a_dash_for_a_job_not_run(bench: ModuleType) -> None:
    samples = {
        "one": [
            {"report": 2.0, "model (wine)": 30.0, "plan": 4.0},
            {"report": 4.0, "model (wine)": 10.0, "plan": 5.0},
            {"report": 3.0, "model (wine)": 20.0, "plan": 6.0},
        ],
        "all": [{"plan": 4.0, "model (clinic)": 50.0, "model (wine)": 52.0, "report": 5.0}],
    }
    assert bench.job_table(samples) == [
        ["`plan`", "5", "4"],
        ["`model (clinic)`", "-", "50"],
        ["`model (wine)`", "20", "52"],
        ["`report`", "3", "5"],
    ]

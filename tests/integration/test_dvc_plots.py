"""`dvc plots show` and `dvc plots diff` on the bounded plot files: the confusion matrix is a
counts table drawn by the repository's `confusion_counts` template (issue 14)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run
from tests.integration.conftest import commit_baseline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFUSION = "plots/confusion.csv"


def counts_in_file(path: Path) -> dict[tuple[str, str], int]:
    with path.open(newline="") as handle:
        return {(r["actual"], r["predicted"]): int(r["count"]) for r in csv.DictReader(handle)}


def confusion_plot(output: str) -> dict[str, Any]:
    plots = json.loads(output)
    assert not [e for e in plots.get("errors", []) if e["name"] == CONFUSION], plots["errors"]
    (plot,) = plots["data"][CONFUSION]
    return dict(plot["content"])


def counts_by_revision(spec: dict[str, Any]) -> dict[str, dict[tuple[str, str], int]]:
    result: dict[str, dict[tuple[str, str], int]] = {}
    for row in spec["data"]["values"]:
        result.setdefault(row["rev"], {})[(row["actual"], row["predicted"])] = int(row["count"])
    return result


def test_dvc_plots_show_and_diff_draw_the_counts(
    pipeline_repo: Path, rerun_repo: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(pipeline_repo, repo, symlinks=True)
    commit_baseline(repo)
    committed = counts_in_file(repo / CONFUSION)
    assert sum(committed.values()) == 552  # every test row, in 4 lines

    spec = confusion_plot(run(["dvc", "plots", "show", "--json"], repo).stdout)
    # the template sums the count column (DVC's own `confusion` would count the 4 lines)
    assert spec["spec"]["transform"][0]["aggregate"] == [
        {"op": "sum", "field": "count", "as": "xy_count"}
    ]
    assert counts_by_revision(spec) == {"workspace": committed}

    # the same base with max_iter changed and the pipeline reproduced (a shared copy)
    repo = Path(shutil.copytree(rerun_repo, tmp_path / "rerun", symlinks=True))
    changed = counts_in_file(repo / CONFUSION)
    assert changed != committed

    diff = confusion_plot(run(["dvc", "plots", "diff", "HEAD", "--json"], repo).stdout)
    assert counts_by_revision(diff) == {"HEAD": committed, "workspace": changed}

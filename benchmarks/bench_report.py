"""The PR report with and without its statistics, written to docs/benchmarks.md (section `report`).

For the default test set (the committed ``reports/predictions.parquet``) and for synthetic binary
test sets of 10^5 and 10^6 rows: the report built and rendered without intervals, the statistics
alone (both predictions tables encoded, then an interval for each of the default gate's metrics),
and the two together, side by side in one run; plus the comment's size with and without them.

    python benchmarks/bench_report.py [--repeat N] [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, table, write_section

from modelci.ci.report import build_report, render_markdown
from modelci.ci.state import RepoState
from modelci.config import load_params
from modelci.judge.comparison import compare_sides, to_scored
from modelci.prediction_table import PREDICTIONS

REPO = Path(__file__).resolve().parents[1]


def synthetic(rows: int, seed: int, actual: np.ndarray) -> pd.DataFrame:
    """A binary scorer of ``actual`` with the default model's rough skill."""
    rng = np.random.default_rng(seed)
    score = np.clip(actual * 0.3 + rng.random(rows) * 0.7, 0, 1)
    return pd.DataFrame(
        {
            "actual": actual,
            "predicted": (score > 0.5).astype(int),
            "proba:0": 1 - score,
            "proba:1": score,
        }
    )


def state(label: str, frame: pd.DataFrame) -> RepoState:
    accuracy = float((frame["actual"] == frame["predicted"]).mean())
    return RepoState(
        label=label,
        metrics={"accuracy": accuracy, "roc_auc": 0.8, "f1": 0.6, "log_loss": 0.5},
    )


def best_of(repeat: int, work: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return median(times), result


def measure(name: str, base: pd.DataFrame, head: pd.DataFrame, repeat: int) -> list[object]:
    gate = load_params(REPO / "params.yaml").gate
    sides = state("base", base), state("PR", head)

    def statistics() -> Any:
        scored = [to_scored(frame, True, 1) for frame in (base, head)]
        return compare_sides(gate, scored[0], scored[1], test_changed=False)

    def plain() -> str:
        return render_markdown(build_report(*sides, gate))[0]

    plain_time, plain_md = best_of(repeat, plain)
    stats_time, comparison = best_of(repeat, statistics)

    def with_stats() -> str:
        return render_markdown(build_report(*sides, gate, comparison=statistics()))[0]

    both_time, stats_md = best_of(repeat, with_stats)
    methods = ", ".join(sorted({i.method for i in comparison.intervals.values()}))
    return [
        name,
        f"{len(base):,}",
        f"{plain_time * 1000:.1f} ms",
        f"{stats_time * 1000:.1f} ms",
        f"{both_time * 1000:.1f} ms",
        methods,
        f"{len(plain_md):,} → {len(stats_md):,}",
    ]


def cli_rows(repeat: int) -> list[list[object]]:
    """The whole ``modelci pr report --base HEAD`` on this repository, and the part of it that the
    statistics take (the base's predictions read through DVC, then the intervals)."""
    import subprocess
    import tempfile

    from modelci.ci.predictions import compare_predictions
    from modelci.ci.state import GitSource, WorkTreeSource, read_state

    modelci = str(Path(sys.executable).parent / "modelci")
    with tempfile.TemporaryDirectory() as out:
        command = [modelci, "report", "--base", "HEAD", "--out", out]

        def report() -> None:
            subprocess.run(command, cwd=REPO, check=True, capture_output=True)  # noqa: S603

        cli, _ = best_of(repeat, report)
    gate = load_params(REPO / "params.yaml").gate
    base = read_state(GitSource("HEAD", REPO))
    head = read_state(WorkTreeSource(REPO))

    def statistics() -> Any:
        return compare_predictions(
            gate,
            root=REPO,
            base_commit=base.commit,
            base_params=base.params,
            base_lock=base.lock,
            head_data=(REPO / PREDICTIONS).read_bytes(),
            head_params=head.params,
            head_lock=head.lock,
        )

    stats, comparison = best_of(repeat, statistics)
    assert comparison.intervals, comparison.notes  # noqa: S101 - the cache must hold the base
    return [
        ["`modelci pr report --base HEAD` (whole command, plots included)", f"{cli:.2f} s"],
        ["of which the statistics: base predictions through DVC + 4 intervals", f"{stats:.2f} s"],
        ["share of the command", f"{stats / cli:.0%}"],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args(argv)
    rows = []
    default = pd.read_parquet(REPO / PREDICTIONS)
    flipped = default.copy()
    flipped.loc[::10, "predicted"] = 1 - flipped.loc[::10, "predicted"]  # a different PR model
    rows.append(measure("default data", default, flipped, args.repeat))
    for size in (int(s) for s in args.sizes.split(",") if s):
        actual = np.random.default_rng(0).integers(0, 2, size)
        base, head = synthetic(size, 1, actual), synthetic(size, 2, actual)
        rows.append(measure("synthetic binary", base, head, max(1, args.repeat // 2)))
    header = ["test set", "rows", "report without statistics", "statistics alone"]
    header += ["report with statistics", "interval methods", "comment chars (without → with)"]
    body = "On the default data, end to end (median of runs on this checkout, base = HEAD):\n\n"
    body += table(["what", "time"], cli_rows(args.repeat))
    body += "\n\nIn process, per test-set size:\n\n" + table(header, rows)
    body += (
        "\n\nThe report here is `build_report` + `render_markdown` (no git, no plots, no DVC);"
        " the statistics encode both predictions tables and compute an interval for each of the"
        " four gated metrics of `params.yaml` (accuracy, roc_auc, f1, log_loss; 2000 resamples)."
        " Count metrics resample the distinct (actual, base, PR) cells at every size; above"
        " 20,000 rows roc_auc and log_loss use the bootstrap's normal limit (DeLong, influence"
        " values). The comment grows by the two interval columns and the notes line.\n"
    )
    path = write_section(
        "report", "PR report statistics", body, "python benchmarks/bench_report.py"
    )
    print(body)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``modelci monitor drift`` wall time and peak memory for 10^4, 10^5 and 10^6 rows, default schema.

Reference and current windows of N rows each are bootstrapped from this repository's training
split (data/prepared/train.parquet, so ``dvc repro`` first), the current one with its ages
shifted so that drift is found and every code path (plots, prediction drift) runs. Each size
runs ``modelci monitor drift`` in a fresh process (imports included, as a workflow step pays
them); the peak resident memory is that process's ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, table, write_section

ROOT = Path(__file__).resolve().parents[1]
SIZES = (10_000, 100_000, 1_000_000)
CHILD = (
    "import json, resource, sys\n"
    "from modelci.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print(json.dumps({'code': code, 'maxrss_kb': usage.ru_maxrss, "
    "'cpu': usage.ru_utime + usage.ru_stime}), file=sys.stderr)\n"
)


def windows(rows: int, folder: Path) -> tuple[Path, Path]:
    train = pd.read_parquet(ROOT / "data" / "prepared" / "train.parquet")
    rng = np.random.default_rng(rows)
    reference = train.iloc[rng.integers(0, len(train), rows)].reset_index(drop=True)
    current = train.iloc[rng.integers(0, len(train), rows)].reset_index(drop=True)
    current["age"] = (current["age"] + 10).clip(upper=100)
    ref, cur = folder / f"reference-{rows}.parquet", folder / f"current-{rows}.parquet"
    reference.to_parquet(ref, index=False)
    current.to_parquet(cur, index=False)
    return ref, cur


def run_once(ref: Path, cur: Path, out: Path) -> tuple[float, float, float, int]:
    args = ["monitor", "drift", "--reference", str(ref), "--current", str(cur), "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", CHILD, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    info = json.loads(done.stderr.strip().splitlines()[-1])
    if info["code"] not in (0, 3):
        raise SystemExit(
            f"modelci monitor drift exited {info['code']}:\n{done.stdout}\n{done.stderr}"
        )
    return seconds, info["cpu"], info["maxrss_kb"] / 1024, info["code"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        folder = Path(tmp)
        for rows in SIZES:
            ref, cur = windows(rows, folder)
            runs = [run_once(ref, cur, folder / "out") for _ in range(args.repeats)]
            seconds, cpu, memory = (median([r[i] for r in runs]) for i in range(3))
            verdict = "drift" if runs[0][3] == 3 else "no drift"
            rows_out.append((f"{rows:,}", f"{seconds:.2f}", f"{cpu:.2f}", f"{memory:.0f}", verdict))
            print(f"{rows:>9} rows: {seconds:.2f} s wall, {cpu:.2f} s CPU, {memory:.0f} MiB")
    body = (
        "`modelci monitor drift` on N reference rows against N current rows of the default schema "
        "(7 "
        "features: KS + PSI on 3 numeric, chi-square + PSI on 4 categorical; the model's "
        "predictions on at most `monitor.prediction_rows` (100,000) rows per side; 8 PNG plots), "
        "in a fresh process each time (imports "
        f"included); median of {args.repeats} runs.\n\n"
        + "CPU time (user + system of that process) is the number that survives a loaded "
        "machine; wall time includes waiting for a core.\n\n"
        + table(("rows per side", "wall (s)", "CPU (s)", "peak RSS (MiB)", "verdict"), rows_out)
    )
    command = "python benchmarks/bench_drift.py" + (
        f" --repeats {args.repeats}" if args.repeats != 3 else ""
    )
    write_section("drift", "Drift check (`modelci monitor drift`)", body, command)


if __name__ == "__main__":
    main()

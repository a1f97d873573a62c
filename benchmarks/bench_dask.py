"""The local engine against the Dask engine (2 workers on this machine), written to
docs/benchmarks.md (section `dask`).

At each of ``--sizes`` synthetic rows (4 numeric and 1 categorical feature, a binary target),
``modelci prepare`` then ``modelci train`` run as subprocesses in a temporary folder:

- local: one Parquet file, `sklearn.ensemble.HistGradientBoostingClassifier` (the local engine's
  default booster; histogram gradient boosting like XGBoost's `hist`);
- dask: the same rows in 8 Parquet files, `xgboost.dask.DaskXGBClassifier`, a cluster of a
  `dask scheduler` and 2 `dask worker` processes (1 thread each) on 127.0.0.1.

Both fit 50 trees of depth 6 (max_leaf_nodes 64 for scikit-learn). Measured: each stage's wall
time, and the peak RSS of the largest process (the stage itself; with Dask also the scheduler and
each worker, sampled every 0.1 s with psutil).

    python benchmarks/bench_dask.py [--sizes 1000000,10000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from report import table, write_section  # noqa: E402

from tests.dask_support import Cluster  # noqa: E402

BIN = Path(sys.executable).parent
FILES = 8
TREES = 50


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(4)})
    frame["kind"] = rng.choice(["a", "b", "c"], rows)
    logit = frame["x0"] - 0.5 * frame["x1"] + frame["x2"] * frame["x3"] + (frame["kind"] == "a")
    frame["y"] = (logit + rng.normal(0, 1, rows) > 0.5).astype("int64")
    return frame


def params(engine: str, source: str, address: str = "") -> dict[str, Any]:
    columns: dict[str, Any] = {f"x{i}": {"type": "float"} for i in range(4)}
    columns["kind"] = {"type": "category", "categories": ["a", "b", "c"]}
    columns["y"] = {"type": "int", "min": 0, "max": 1}
    out: dict[str, Any] = {
        "data": {"source": source, "target": "y", "task": "binary", "columns": columns},
        "prepare": {"test_size": 0.2},
    }
    if engine == "local":
        out["train"] = {
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "estimator_params": {"max_iter": TREES, "max_leaf_nodes": 64, "early_stopping": False},
        }
    else:
        out["compute"] = {"engine": "dask", "address": address, "partitions": FILES}
        out["train"] = {
            "estimator": "xgboost.dask.DaskXGBClassifier",
            "estimator_params": {"n_estimators": TREES, "max_depth": 6},
            "trusted_types": ["xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"],
        }
    return out


class PeakRss:
    """The peak RSS of each process in ``roots`` and their descendants, sampled in a thread."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for root in self.roots:
            try:
                process = psutil.Process(root)
                family = [process, *process.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for member in family:
                try:
                    rss = member.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                self.peaks[member.pid] = max(self.peaks.get(member.pid, 0), rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.1)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def largest_mb(self) -> float:
        return max(self.peaks.values(), default=0) / 1e6


def stage(name: str, cwd: Path, watch: list[int], env: dict[str, str]) -> tuple[float, float]:
    """Run ``modelci NAME``; its wall time and the largest peak RSS among it and ``watch``."""
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        [str(BIN / "modelci"), name],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    with PeakRss([process.pid, *watch]) as rss:
        output, _ = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"modelci {name} failed:\n{output.decode()[-3000:]}")
    return seconds, rss.largest_mb()


def run_size(rows: int, cluster: Cluster) -> list[list[object]]:
    results = []
    env = {**os.environ, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        root = Path(tmp)
        parts = [synthetic(rows // FILES, seed) for seed in range(FILES)]
        (root / "raw").mkdir()
        for index, part in enumerate(parts):
            part.to_parquet(root / "raw" / f"part-{index}.parquet", index=False)
        pd.concat(parts, ignore_index=True).to_parquet(root / "all.parquet", index=False)
        del parts
        for engine in ("local", "dask"):
            cwd = root / engine
            cwd.mkdir()
            source = str(root / "all.parquet") if engine == "local" else str(root / "raw")
            config = params(engine, source, cluster.address)
            (cwd / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            watch = []
            if engine == "dask":
                watch = [cluster.scheduler.pid, *(p.pid for p in cluster.workers.values())]
            for name in ("prepare", "train"):
                seconds, peak = stage(name, cwd, watch, env)
                results.append([f"{rows:,}", engine, name, f"{seconds:.1f}", f"{peak:.0f}"])
                print(results[-1], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--memory-limit", default="2GB", help="per worker")
    args = parser.parse_args()
    rows: list[list[object]] = []
    with Cluster(workers=2, memory_limit=args.memory_limit) as cluster:
        for size in (int(value) for value in args.sizes.split(",")):
            rows += run_size(size, cluster)
    body = (
        "Local engine (one process, scikit-learn's HistGradientBoostingClassifier) against the "
        f"Dask engine (XGBoost's DaskXGBClassifier on 2 workers of 1 thread, {FILES} "
        f"partitions), {TREES} trees each. Peak RSS: the largest single process (for Dask: the "
        "stage, the scheduler or a worker). On one machine Dask pays for its processes and "
        "transfers; what it buys is that no process holds the whole table.\n\n"
        + table(("rows", "engine", "stage", "wall s", "peak RSS of the largest process, MB"), rows)
    )
    command = f"python benchmarks/bench_dask.py --sizes {args.sizes}"
    print(write_section("dask", "Local engine against Dask (2 workers)", body, command))


if __name__ == "__main__":
    main()

"""Pipeline and CLI timings, written to docs/benchmarks.md (sections `pipeline` and `scale`).

Runs in fresh local clones of the committed repository.

- pipeline: on the default data, full `dvc repro` (cold: no outputs, no cache, new MLflow
  store), no-op `dvc repro` against bare `dvc status`, `modelci --help`, each stage's own run
  time, and the import overhead of each stage's libraries.
- scale: at each of ``--sizes`` rows of the default schema (synthetic rows: Titanic rows drawn
  with replacement, numeric columns jittered, so the features keep their signal), each stage,
  the full `dvc repro --force`, `modelci pr report`, and the bytes of every file the pipeline
  commits to git, with the thread setting used.

    python benchmarks/bench_pipeline.py [--repeat N] [--sizes 10000,100000,1000000]
        [--sections pipeline,scale]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, table, write_section

from modelci.ci.lockcheck import pipeline_git_outputs
from modelci.config import load_params

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The heavy imports each stage pays before doing any work.
STAGE_IMPORTS = {
    "prepare": "import pandas, pandera.pandas, sklearn.model_selection",
    "train": "import pandas, sklearn.ensemble, skops.io",
    "evaluate": "import pandas, sklearn.metrics, skops.io, mlflow, mlflow.sklearn",
}


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out["PATH"] = f"{BIN}{os.pathsep}{out['PATH']}"
    return out


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env(), check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - start


def fresh_clone(parent: Path, name: str) -> Path:
    target = parent / name
    subprocess.run(  # noqa: S603
        ["git", "clone", "--quiet", str(REPO), str(target)], check=True  # noqa: S607
    )
    for generated in ("data/prepared/train.parquet", "data/prepared/test.parquet", "mlflow.db"):
        (target / generated).unlink(missing_ok=True)
    return target


def synthetic_rows(rows: int, cwd: Path, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows of the default schema: Titanic rows drawn with replacement, ages and fares
    jittered within the schema's bounds; the target stays with its row, so the signal does."""
    from modelci.data.sources import read_table

    params = load_params(cwd / "params.yaml")
    base = read_table(cwd / params.data.source)
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    for name, scale in (("age", 2.0), ("fare", 0.05)):
        spec = params.data.columns[name]
        jitter = rng.normal(0, scale, rows)
        value = frame[name] + jitter if name == "age" else frame[name] * np.exp(jitter)
        frame[name] = value.clip(spec.min, spec.max).round(2)
    return frame


def committed_bytes(repo: Path) -> tuple[int, str, int]:
    """Total bytes of the files the pipeline commits to git (what ``check-lock`` compares), and
    the largest one."""
    _, outputs = pipeline_git_outputs(repo, [])
    files = []
    for name in outputs:
        path = repo / name
        files += [item for item in path.rglob("*") if item.is_file()] if path.is_dir() else [path]
    sizes = {str(item.relative_to(repo)): item.stat().st_size for item in files if item.exists()}
    largest = max(sizes, key=sizes.__getitem__)
    return sum(sizes.values()), largest, sizes[largest]


@dataclass(frozen=True)
class ScaleResult:
    rows: int
    stages: tuple[float, float, float]  # prepare, train, evaluate
    full: float
    report: float
    committed: int
    largest: str
    largest_size: int
    n_threads: int

    def cells(self) -> tuple[str, ...]:
        return (
            f"{self.rows:,}",
            *(f"{seconds:.1f}" for seconds in self.stages),
            f"{self.full:.1f}",
            f"{self.report:.2f}",
            f"{self.committed / 1024:.1f} KiB",
            f"{self.largest} ({self.largest_size / 1024:.1f} KiB)",
            str(self.n_threads),
        )


def scale_run(parent: Path, rows: int) -> ScaleResult:
    """One size: stage by stage, then the whole pipeline forced, then the report."""
    repo = fresh_clone(parent, f"scale-{rows}")
    source = repo / "data" / "synthetic.parquet"
    synthetic_rows(rows, repo).to_parquet(source, index=False)
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["data"]["source"] = str(source.relative_to(repo))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    prepare, train, evaluate = (
        timed(["dvc", "repro", stage], repo) for stage in ("prepare", "train", "evaluate")
    )
    full = timed(["dvc", "repro", "--force"], repo)
    git(["add", "params.yaml", *pipeline_git_outputs(repo, [])[1]], repo)
    git(["commit", "-q", "-m", f"{rows} rows"], repo)
    report = median([timed(["modelci", "pr", "report", "--base", "HEAD"], repo) for _ in range(3)])
    committed, largest, largest_size = committed_bytes(repo)
    threads = load_params(repo / "params.yaml").train.n_threads
    shutil.rmtree(repo)
    return ScaleResult(
        rows, (prepare, train, evaluate), full, report, committed, largest, largest_size, threads
    )


def git(args: list[str], repo: Path) -> None:
    identity = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@modelci.invalid"}
    identity |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@modelci.invalid"}
    subprocess.run(  # noqa: S603
        ["git", *args], cwd=repo, env=env() | identity, check=True  # noqa: S607
    )


def verdicts(results: list[ScaleResult]) -> list[str]:
    """The issue's aims, each met or not, from the numbers above."""
    biggest = max(results, key=lambda result: result.rows)
    heaviest = max(result.committed for result in results)
    reports = [result.report for result in results]
    spread = max(reports) / min(reports)

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"- full repro at {biggest.rows:,} rows under 60 s: {biggest.full:.1f} s -> "
        f"{met(biggest.full < 60)}",
        f"- committed outputs under 1 MB at every size: at most {heaviest / 1024:.1f} KiB -> "
        f"{met(heaviest < 1024 * 1024)}",
        f"- report time flat in the number of rows: {min(reports):.2f} to {max(reports):.2f} s "
        f"({spread:.2f}x from the fastest to the slowest size) -> {met(spread < 1.5)}",
    ]


def scale(sizes: list[int]) -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="modelci-bench-scale-") as tmp:
        results = [scale_run(Path(tmp), size) for size in sizes]
    load_after = os.getloadavg()[0]
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    body = "\n\n".join(
        [
            "Synthetic rows of the default schema (Titanic rows drawn with replacement, age and "
            "fare jittered), 25% held out. Stages: `dvc repro STAGE` one after the other (each "
            "includes about a second of DVC start-up; evaluate includes MLflow logging, and at "
            "the first size creating the MLflow store); full: `dvc repro --force`; report: "
            "`modelci pr report --base HEAD` (median of 3) on the committed outputs; committed: "
            "`dvc.lock` and every output `dvc.yaml` leaves to git (what `modelci pr check-lock` "
            "compares). Threads: `train.n_threads` from params.yaml (OMP_NUM_THREADS in the "
            f"environment: {omp}). Seconds, one run per size. Load average (1 min) of the "
            f"machine before and after: {load_before:.1f} and {load_after:.1f} (other work "
            "shares the 2 cores when it is above 2).",
            table(
                (
                    "rows",
                    "prepare",
                    "train",
                    "evaluate",
                    "full repro",
                    "report",
                    "committed",
                    "largest committed file",
                    "n_threads",
                ),
                [result.cells() for result in results],
            ),
            "Aims (issue #14), on 2 cores:\n" + "\n".join(verdicts(results)),
        ]
    )
    sizes_arg = ",".join(str(size) for size in sizes)
    path = write_section(
        "scale",
        "Pipeline at scale",
        body,
        f"python benchmarks/bench_pipeline.py --sections scale --sizes {sizes_arg}",
    )
    print(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="samples per measurement")
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="comma-separated row counts (scale)"
    )
    parser.add_argument("--sections", default="pipeline,scale", help="pipeline and/or scale")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if "pipeline" in sections:
        pipeline(args.repeat)
    if "scale" in sections:
        scale([int(size) for size in args.sizes.split(",")])


def pipeline(n: int) -> None:
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="modelci-bench-") as tmp:
        parent = Path(tmp)
        full = []
        for index in range(max(1, n // 2)):
            clone = fresh_clone(parent, f"full-{index}")
            full.append(timed(["dvc", "repro", "--force"], clone))
            if index:
                shutil.rmtree(clone)
        repo = parent / "full-0"
        rows.append(("full `dvc repro` (3 stages, cold)", f"{median(full):.2f} s", str(len(full))))

        timed(["dvc", "repro"], repo)  # settle
        noop = [timed(["dvc", "repro"], repo) for _ in range(n)]
        status = [timed(["dvc", "status"], repo) for _ in range(n)]
        ratio = median(noop) / median(status)
        rows.append(("no-op `dvc repro`", f"{median(noop):.2f} s", str(n)))
        rows.append(("bare `dvc status`", f"{median(status):.2f} s", str(n)))
        rows.append(("no-op repro / status", f"{ratio:.2f}x", ""))

        help_ = [timed(["modelci", "--help"], repo) for _ in range(n * 2)]
        rows.append(("`modelci --help`", f"{median(help_) * 1000:.0f} ms", str(n * 2)))
        python = [timed([sys.executable, "-c", "pass"], repo) for _ in range(n * 2)]
        rows.append(("bare `python -c pass`", f"{median(python) * 1000:.0f} ms", str(n * 2)))

        stage_rows = []
        for stage, imports in STAGE_IMPORTS.items():
            total = [timed(["modelci", stage], repo) for _ in range(max(1, n // 2))]
            imported = [timed([sys.executable, "-c", imports], repo) for _ in range(n)]
            share = median(imported) / median(total)
            stage_rows.append(
                (stage, f"{median(total):.2f} s", f"{median(imported):.2f} s", f"{share:.0%}")
            )

    body = "\n\n".join(
        [
            table(("measurement", "median", "samples"), rows),
            "Per stage: the whole `modelci <stage>` process against importing its libraries alone.",
            table(("stage", "run", "imports only", "share"), stage_rows),
            "Aims (issue #2): no-op repro within 1.2x of `dvc status`, `modelci --help` under "
            "0.3 s, full repro under 10 s on 2 cores.",
        ]
    )
    path = write_section(
        "pipeline", "Pipeline and CLI", body, f"python benchmarks/bench_pipeline.py --repeat {n}"
    )
    print(path.read_text())


if __name__ == "__main__":
    main()

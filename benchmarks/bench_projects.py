"""``modelci affected`` on a repository of many projects, side by side with ``dvc status``.

A synthetic repository of N projects, each a nested ``dvc.yaml`` as ``modelci init --add`` writes
it (the same template), its params.yaml and a small data file, committed in git; then one
commit changes one project's params. Both commands run as a user runs them (a fresh process,
imports included) on the same checkout: ``modelci affected --base HEAD~1`` (what the plan job
runs) and ``dvc status`` (DVC's own walk of every pipeline). Written to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, write_section

from modelci.scaffold.init import nested_pipeline

VENV_BIN = Path(sys.executable).parent
PARAMS = """\
data:
  source: data/raw.csv
  target: y
  task: binary
  columns:
    x: {type: float}
    y: {type: int, min: 0, max: 1}
train:
  estimator: sklearn.linear_model.LogisticRegression
  seed: 42
tracking:
  experiment: pINDEX
  model_name: pINDEX
"""


def env() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    environment["PATH"] = f"{VENV_BIN}{os.pathsep}{environment.get('PATH', '')}"
    for key in ("AUTHOR", "COMMITTER"):
        environment[f"GIT_{key}_NAME"] = "bench"
        environment[f"GIT_{key}_EMAIL"] = "bench@modelci.invalid"
    return environment


def call(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(  # noqa: S603 - fixed tools, arguments built here
        args, cwd=cwd, env=env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def build(root: Path, count: int) -> None:
    """The repository: root pyproject.toml and uv.lock, N projects, two commits."""
    (root / "pyproject.toml").write_text('[project]\nname = "many"\ndependencies = []\n')
    (root / "uv.lock").write_text("version = 1\n")
    for index in range(count):
        folder = f"models/p{index:03d}"
        (root / folder / "data").mkdir(parents=True)
        (root / folder / "dvc.yaml").write_text(nested_pipeline(folder))
        (root / folder / "params.yaml").write_text(PARAMS.replace("INDEX", f"{index:03d}"))
        rows = "".join(f"{(i * 7 + index) % 100 / 10},{i % 2}\n" for i in range(200))
        (root / folder / "data" / "raw.csv").write_text("x,y\n" + rows)
    call(["git", "init", "-q", "-b", "main"], root)
    call([str(VENV_BIN / "dvc"), "init", "-q"], root)
    call([str(VENV_BIN / "dvc"), "config", "core.analytics", "false"], root)
    call(["git", "add", "-A"], root)
    call(["git", "commit", "-q", "-m", "projects"], root)
    params = root / "models/p007/params.yaml"
    params.write_text(params.read_text().replace("seed: 42", "seed: 7"))
    call(["git", "commit", "-q", "-am", "one project's params"], root)


def timed(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system of the child) of one run, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = call(args, cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=200, help="projects in the repository")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command")
    args = parser.parse_args()
    commands = {
        "`modelci affected --base HEAD~1`": [str(VENV_BIN / "modelci"), "affected", "--base",
                                             "HEAD~1"],
        "`dvc status`": [str(VENV_BIN / "dvc"), "status", "--json"],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="modelci-bench-projects-") as tmp:
        root = Path(tmp)
        build(root, args.projects)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeat):  # interleaved: both see the same load
            for name, command in commands.items():
                wall, cpu, out = timed(command, root)
                samples[name].append((wall, cpu))
                if name.startswith("`modelci"):
                    plan = json.loads(out)
                    if plan["count"] != 1 or len(plan["projects"]) != args.projects:
                        raise SystemExit(f"unexpected plan: {plan['matrix']}")
    rows = []
    for name, runs in samples.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        rows.append(f"| {name} | {median(walls):.2f} | {median(cpus):.2f} | {len(runs)} |")
    (walls_a, cpus_a), (walls_s, cpus_s) = (
        ([w for w, _ in runs], [c for _, c in runs]) for runs in samples.values()
    )
    body = "\n".join(
        [
            f"A synthetic repository of {args.projects} projects (each a nested `dvc.yaml` of 4 "
            "stages as `modelci init --add` writes it, its params.yaml and a 200-row data file); "
            "the last commit changes one project's params. Each command in a fresh process, "
            f"interleaved, median of {args.repeat}; CPU is user + system of that process. On a "
            "loaded machine the wall time includes the wait for a core: CPU time is the number "
            "to hold to the aim.",
            "",
            "| command | wall (s) | CPU (s) | runs |",
            "|---|---|---|---|",
            *rows,
            "",
            f"`modelci affected` took {median(walls_a) / median(walls_s):.2f}x the wall time and "
            f"{median(cpus_a) / median(cpus_s):.2f}x the CPU time of `dvc status`, and found the "
            "one affected project. Aim (issue #21): under 3 s for 200 projects on 2 cores.",
        ]
    )
    print(body)
    invocation = (
        f"python benchmarks/bench_projects.py --projects {args.projects} --repeat {args.repeat}"
    )
    write_section(
        "projects", "Several projects: `modelci affected` vs `dvc status`", body, invocation
    )


if __name__ == "__main__":
    main()

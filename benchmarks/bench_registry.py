"""Registry commands against ``mlflow server`` on PostgreSQL + S3, written to docs/benchmarks.md.

Starts the tests' backend (PostgreSQL 15, moto's S3, ``mlflow server`` with one worker, all on
127.0.0.1), reproduces this repository's pipeline in a throwaway copy, then times the CLI as a
release job runs it: ``register`` (one new commit each; the first also logs the MLflow run),
``promote`` of each registered version, and ``status``. ``status`` is timed side by side two
ways, interleaved: as it runs now (REST reads, no MLflow import) and through ``MlflowClient``,
the path it took before (the same command with the REST reader switched off).

    python benchmarks/bench_registry.py [--repeat N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from report import median, table, write_section  # noqa: E402

from tests.conftest import make_model_repo, run, tool_env  # noqa: E402
from tests.integration.registry_support import missing, start_backend  # noqa: E402

MODELCI = str(Path(sys.executable).parent / "modelci")
# ``modelci registry status`` with the REST reader off: every read goes through MlflowClient.
STATUS_VIA_CLIENT = (
    "import sys\n"
    "import modelci.registry.core as core\n"
    "init = core.Registry.__init__\n"
    "def without_rest(self, *a, **k):\n"
    "    init(self, *a, **k)\n"
    "    self.rest = None\n"
    "core.Registry.__init__ = without_rest\n"
    "from modelci.cli import main\n"
    "sys.exit(main(['registry', 'status']))\n"
)


def timed(args: list[str], cwd: Path, uri: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - fixed tools, arguments built here
        args, cwd=cwd, env=tool_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def measure(repo: Path, uri: str, repeat: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"register (first: logs the run)": []}
    samples.update({"register": [], "promote": [], "status": [], "status via MlflowClient": []})
    for i in range(repeat + 1):  # version i + 1 is registered for commit "bench i"
        run(["git", "commit", "-q", "--allow-empty", "-m", f"bench {i}"], repo)
        key = "register" if i else "register (first: logs the run)"
        samples[key].append(timed([MODELCI, "register"], repo, uri))
        samples["promote"].append(timed([MODELCI, "promote", "--version", str(i + 1)], repo, uri))
    for _ in range(repeat):
        samples["status"].append(timed([MODELCI, "status"], repo, uri))
        samples["status via MlflowClient"].append(
            timed([sys.executable, "-c", STATUS_VIA_CLIENT], repo, uri)
        )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (%(default)s)")
    args = parser.parse_args()
    reason = missing()
    if reason is not None:
        raise SystemExit(f"bench_registry: {reason}")
    with tempfile.TemporaryDirectory(prefix="modelci-bench-registry-") as tmp:
        root = Path(tmp)
        repo = make_model_repo(root / "repo")
        run(["dvc", "repro", "--quiet"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", "reproduced"], repo)
        backend = start_backend(root / "backend")
        try:
            samples = measure(repo, backend.server.uri, args.repeat)
        finally:
            backend.stop()
    rows = [[name, len(s), f"{median(s):.2f} s"] for name, s in samples.items()]
    ratio = median(samples["status via MlflowClient"]) / median(samples["status"])
    body = (
        "`mlflow server` (one worker) on PostgreSQL 15 and moto's S3, all on 127.0.0.1; the\n"
        "CLI run as a release job runs it, each a fresh process (imports included).\n\n"
        + table(["command", "runs", "median"], rows)
        + f"\n\n`status` reads the REST API without importing MLflow: {ratio:.1f}x faster than\n"
        "the same command reading through `MlflowClient` (the path it took before), measured\n"
        "interleaved in this run.\n"
    )
    path = write_section(
        "registry",
        "Registry commands on PostgreSQL + S3",
        body,
        f"python benchmarks/bench_registry.py --repeat {args.repeat}",
    )
    print(body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

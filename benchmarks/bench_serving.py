"""Serving throughput, latency, cold start and memory, side by side; writes docs/benchmarks.md.

In a fresh clone of the committed repository the pipeline runs once (`dvc repro --force`: the
committed outputs would let it skip evaluate, which logs the MLflow run; export writes the
build-time ONNX export `models/onnx`), that run is registered as
`models:/bench-serving@champion`, and these servers run at once on 127.0.0.1, each started and
stopped by PID:

* `modelci serve --model models/model.skops` (the local-file path) with 1 worker and with one
  worker per CPU, on the ONNX runtime (the build-time export) and on `--runtime sklearn`;
* `mlflow models serve -m models:/bench-serving@champion --env-manager local` with 1 worker and
  with the same number of workers.

The load generator is wrk (Debian's package; a Lua script POSTs one body file) at 1, 8 and 64
connections with `/invocations` bodies of 1 and 100 rows, 1 and 8 with 10,000 rows and 1 with
100,000 rows (`dataframe_split`, the format both servers accept). Every round runs each
(rows, connections) cell on every server one after the other; the ratios are taken within a
round and the table gives their medians over the rounds, so load from other processes on the
machine affects both sides of a ratio alike.
Cold start is process start to the first 200 from the readiness URL; idle RSS is the sum over the
server's processes after start, peak RSS the sum of their high-water marks at the end.

    python benchmarks/bench_serving.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.process_support
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, round_options, table, write_section

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAME = "bench-serving"
URI = f"models:/{NAME}@champion"
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local handle = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = handle:read("*a")
handle:close()
"""


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELCI_"))}
    out["PATH"] = f"{BIN}{os.pathsep}{out['PATH']}"
    out["OMP_NUM_THREADS"] = "1"  # one thread per worker for every server
    out.update(extra)
    return out


def prepare(work: Path) -> tuple[Path, str]:
    """Clone, run the pipeline, register its run as NAME@champion; returns (repo, tracking URI)."""
    repo = work / "repo"
    subprocess.run(  # noqa: S603
        ["git", "clone", "--quiet", str(REPO), str(repo)], check=True  # noqa: S607
    )
    (repo / "mlflow.db").unlink(missing_ok=True)
    print("bench-serving: dvc repro in a fresh clone ...", flush=True)
    subprocess.run(  # noqa: S603
        [str(BIN / "dvc"), "repro", "--quiet", "--force"], cwd=repo, env=env(), check=True
    )
    tracking = f"sqlite:///{repo / 'mlflow.db'}"
    import mlflow
    from mlflow import MlflowClient

    from modelci.fileio import file_digest

    mlflow.set_tracking_uri(tracking)
    client = MlflowClient(tracking)
    sha256 = file_digest(repo / "models/model.skops")
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`modelci.model_sha256` = '{sha256}'",
        output_format="list",
    )
    version = mlflow.register_model(f"runs:/{runs[0].info.run_id}/model", NAME)
    client.set_model_version_tag(NAME, version.version, "modelci.model_sha256", sha256)
    client.set_registered_model_alias(NAME, "champion", version.version)
    return repo, tracking


def write_bodies(repo: Path, work: Path, sizes: list[int]) -> dict[int, Path]:
    """``dataframe_split`` bodies of valid rows spanning the schema (the same bytes for all)."""
    from modelci.config import load_service_params
    from modelci.serving.schema import InputSchema

    schema = InputSchema.from_params(load_service_params(repo / "params.yaml").data)
    bodies = {}
    for size in sizes:
        rows = schema.example_rows(size, seed=size)
        payload = {"columns": list(schema.names), "data": [list(r.values()) for r in rows]}
        path = work / f"body-{size}.json"
        path.write_text(json.dumps({"dataframe_split": payload}), encoding="utf-8")
        bodies[size] = path
    return bodies


def process_tree(pid: int) -> list[int]:
    found = [pid]
    for child in Path("/proc").glob("[0-9]*"):
        try:
            stat = (child / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.extend(process_tree(int(child.name)))
    return found


def rss_mb(pid: int, key: str, source: str = "status") -> float:
    """Sum of ``key`` over the process and its descendants, in MB: VmRSS or VmHWM from
    ``/proc/<pid>/status``, or Pss from ``smaps_rollup`` (shared pages split between the
    processes that map them, so forked workers are not counted twice)."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/{source}").read_text()
        except OSError:
            continue
        match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) if match else 0
    return total / 1024


@dataclass
class Server:
    label: str
    args: list[str]
    ready: str
    port_env: str = ""  # the environment variable that takes the port, else `--port`
    extra_env: dict[str, str] = field(default_factory=dict)
    process: Any = None
    port: int = 0
    cold_start: float = 0.0
    idle_rss: float = 0.0
    rps: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    p50: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    p99: dict[tuple[int, int], list[float]] = field(default_factory=dict)


def start(server: Server, repo: Path, tracking: str) -> None:
    from tests.process_support import ServerProcess, free_port

    server.port = free_port()
    if server.port_env:
        args, extra = server.args, {**server.extra_env, server.port_env: str(server.port)}
    else:
        args, extra = [*server.args, "--port", str(server.port)], server.extra_env
    began = time.perf_counter()
    server.process = ServerProcess(
        args, server.port, cwd=repo, env=env(MLFLOW_TRACKING_URI=tracking, **extra)
    )
    try:
        server.process.wait_ready(server.ready, timeout=300)
    except BaseException:
        server.process.cleanup()
        raise
    server.cold_start = time.perf_counter() - began
    time.sleep(1.0)
    server.idle_rss = rss_mb(server.process.pid, "VmRSS")
    print(f"bench-serving: {server.label} ready in {server.cold_start:.2f} s", flush=True)


def wrk(
    port: int,
    body: Path,
    connections: int,
    seconds: float,
    lua: Path,
    path: str = "/invocations",
) -> tuple[float, float, float]:
    """(requests/s, p50 and p99 latency in s) of one wrk run POSTing ``body`` to ``path``;
    raises if any response is not 2xx."""
    done = subprocess.run(  # noqa: S603
        [
            "/usr/bin/wrk",
            "-t",
            str(min(connections, 2)),
            "-c",
            str(connections),
            "-d",
            f"{seconds:g}s",
            "--timeout",
            "120s",
            "--latency",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        check=True,
        timeout=seconds + 300,
    )
    out = done.stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on port {port}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    if rps == 0:  # slower than the run is long (a large body on a slow server): run longer
        if seconds >= 40:
            raise RuntimeError(f"no request completed in {seconds:g} s on port {port}:\n{out}")
        return wrk(port, body, connections, seconds * 2, lua, path)

    def latency(percent: int) -> float:
        found = re.search(rf"{percent}%\s+([0-9.]+)(us|ms|s)\b", out)
        if found is None:
            raise RuntimeError(f"no {percent}% latency in wrk's output:\n{out}")
        return float(found.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[found.group(2)]

    return rps, latency(50), latency(99)


def in_process_row(repo: Path) -> dict[str, float]:
    """Median seconds of validate + ONNX predict on one row in process (micro-batching's upper
    bound: what batching the model call could save per request)."""
    from modelci.serving.payload import batch_from_invocation
    from modelci.serving.server import ServeConfig, load_served

    served = load_served(
        ServeConfig(model_uri=str(repo / "models/model.skops"), params_path=repo / "params.yaml")
    )
    row = served.schema.example_rows(1, seed=3)[0]
    payload = {"dataframe_split": {"columns": list(row), "data": [list(row.values())]}}
    samples_validate, samples_predict = [], []
    for _ in range(2000):
        began = time.perf_counter()
        batch = served.schema.validate(batch_from_invocation(payload, served.schema, 10))
        middle = time.perf_counter()
        served.predictor.predict(batch)
        samples_validate.append(middle - began)
        samples_predict.append(time.perf_counter() - middle)
    return {"validate": median(samples_validate), "predict": median(samples_predict)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = round_options(parser, 3, 3.0)
    rounds, seconds = args.rounds, args.seconds
    sizes = [1, 100, 10_000, 100_000]
    # Large bodies at many connections queue for longer than a run lasts on the slower servers
    # (64 x 10,000 rows: over a minute per request on mlflow here): fewer connections there.
    most = {1: 64, 100: 64, 10_000: 8, 100_000: 1}
    cells = [(rows, c) for rows in sizes for c in (1, 8, 64) if c <= most[rows]]
    from modelci.serving.workers import cpu_quota

    cores = cpu_quota()
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    servers: list[Server] = []
    try:
        repo, tracking = prepare(work)
        bodies = write_bodies(repo, work, sizes)
        lua = work / "post.lua"
        lua.write_text(LUA, encoding="utf-8")
        floor = in_process_row(repo)
        ours = [str(BIN / "modelci"), "serve", "--model", "models/model.skops"]
        theirs = [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            URI,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
        ]
        servers = [
            Server("modelci onnx, 1 worker", [*ours, "--workers", "1"], "/ready"),
            Server(f"modelci onnx, {cores} workers", [*ours, "--workers", str(cores)], "/ready"),
            Server(
                "modelci sklearn, 1 worker",
                [*ours, "--workers", "1", "--runtime", "sklearn"],
                "/ready",
            ),
            Server(
                f"modelci sklearn, {cores} workers",
                [*ours, "--workers", str(cores), "--runtime", "sklearn"],
                "/ready",
            ),
            Server("mlflow, 1 worker", [*theirs, "--workers", "1"], "/ping"),
            Server(f"mlflow, {cores} workers", [*theirs, "--workers", str(cores)], "/ping"),
        ]
        for server in servers:
            start(server, repo, tracking)
        for index in range(rounds):
            print(f"bench-serving: round {index + 1}/{rounds}", flush=True)
            for cell in cells:
                order = servers if index % 2 == 0 else servers[::-1]  # alternate who goes first
                # a large body needs a longer run for a few completed requests on the slowest
                span = seconds if cell[0] < 10_000 else max(seconds, 3.0 * (cell[0] // 10_000))
                span = min(span, 12.0)
                print(f"bench-serving: {cell[0]} rows, {cell[1]} connections", flush=True)
                for server in order:
                    rps, p50, _ = wrk(server.port, bodies[cell[0]], cell[1], span, lua)
                    server.rps.setdefault(cell, []).append(rps)
                    server.p50.setdefault(cell, []).append(p50)
        peak = {server.label: rss_mb(server.process.pid, "VmHWM") for server in servers}
    finally:
        for server in servers:
            if server.process is not None:
                server.process.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    by = {server.label: server for server in servers}
    one, many = by["modelci onnx, 1 worker"], by[f"modelci onnx, {cores} workers"]
    sk_one = by["modelci sklearn, 1 worker"]
    ml_one, ml_many = by["mlflow, 1 worker"], by[f"mlflow, {cores} workers"]

    def ratio(a: Server, b: Server, cell: tuple[int, int]) -> float:
        return median([x / y for x, y in zip(a.rps[cell], b.rps[cell], strict=True)])

    rows_out = []
    for cell in cells:
        rows_out.append(
            [f"{cell[0]:,}", str(cell[1])]
            + [f"{median(s.rps[cell]):.1f}" for s in servers]
            + [
                f"{ratio(one, ml_one, cell):.1f}x",
                f"{ratio(many, ml_many, cell):.1f}x",
                f"{ratio(many, one, cell):.2f}x",
            ]
        )
    header = [
        "rows",
        "conns",
        *[s.label for s in servers],
        "onnx/mlflow 1w",
        f"onnx/mlflow {cores}w",
        f"onnx {cores}w/1w",
    ]
    latency = [
        [
            s.label,
            f"{median(s.p50[(1, 1)]) * 1000:.2f}",
            f"{median(s.p50[(10_000, 1)]) * 1000:.1f}",
            f"{s.cold_start:.2f}",
            f"{s.idle_rss:.0f}",
            f"{peak[s.label]:.0f}",
        ]
        for s in servers
    ]
    worst_1w = min(ratio(one, ml_one, cell) for cell in cells)
    worst_nw = min(ratio(many, ml_many, cell) for cell in cells)
    scaling = ratio(many, one, (1, 64))
    body = (
        f"`POST /invocations` (`dataframe_split`) with wrk for {seconds:g} s per cell, "
        f"{rounds} alternating round(s); requests/s are medians over rounds, ratios medians of "
        f"per-round ratios. The same model everywhere (the pipeline's model; modelci serves "
        f"`models/model.skops` with its build-time ONNX export, mlflow the registered run's "
        f"pyfunc). {cores} CPUs available; wrk shares them.\n\n"
        + table(header, rows_out)
        + "\n\n"
        + table(
            [
                "server",
                "p50 ms, 1 row",
                "p50 ms, 10,000 rows",
                "cold start s",
                "idle RSS MB",
                "peak RSS MB",
            ],
            latency,
        )
        + "\n\n"
        f"In process, one row: validation {floor['validate'] * 1e6:.0f} us, ONNX predict "
        f"{floor['predict'] * 1e6:.0f} us (the most adaptive micro-batching could save per "
        f"request, against a p50 of {median(one.p50[(1, 1)]) * 1e6:.0f} us over HTTP).\n\n"
        f"- Aim: >= 3x `mlflow models serve` at every size: worst cell {worst_1w:.1f}x "
        f"(1 worker each), {worst_nw:.1f}x ({cores} workers each) -> "
        f"{'met' if min(worst_1w, worst_nw) >= 3 else 'NOT met'}.\n"
        f"- Aim: >= 1.7x own single-worker throughput with {cores} workers at 64 connections "
        f"(1 row): {scaling:.2f}x -> {'met' if scaling >= 1.7 else 'NOT met'}.\n"
        f"- Aim: cold start < 2 s: {one.cold_start:.2f} s (onnx, 1 worker), "
        f"{sk_one.cold_start:.2f} s (sklearn), mlflow {ml_one.cold_start:.2f} s -> "
        f"{'met' if one.cold_start < 2 else 'NOT met'}.\n"
    )
    command = "python benchmarks/bench_serving.py" + (" --quick" if args.quick else "")
    path = write_section("serving", "Serving: throughput, cold start and memory", body, command)
    print(body)
    print(f"bench-serving: wrote {path}")


if __name__ == "__main__":
    main()

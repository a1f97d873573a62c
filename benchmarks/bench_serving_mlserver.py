"""modelci beside MLServer on the Open Inference Protocol (KServe v2); writes docs/benchmarks.md.

In a fresh clone of the committed repository the pipeline runs once (`dvc repro`). MLServer
1.7.1 with `mlserver-sklearn` is installed by this script into its own virtual environment,
`.bench/mlserver-1.7.1` (gitignored, created once with uv and reused), with the scikit-learn and
NumPy versions of this environment and `uvloop==0.21.0` (MLServer 1.7.1's parallel workers crash
with uvloop 0.23, SeldonIO/MLServer#2286). mlserver-sklearn loads a joblib file: the fitted model
is read from the pipeline's `models/model.skops` and dumped with joblib into the temporary
directory, so both servers serve the same fitted model.

These servers run at once on 127.0.0.1, each started and stopped by PID:

* `modelci serve --model models/model.skops` (its build-time ONNX export, the default) with 1
  worker and with one worker per CPU;
* `mlserver start` with `parallel_workers` 0 (inference in the server's own process), 1 and one
  per CPU, and `debug` off (its default, on, writes an access log line per request, which
  modelci does not); everything else is MLServer's default.

wrk POSTs the same v2 body to `POST /v2/models/model/infer` on every server: one tensor per
column (`BYTES` with `content_type: str` for the categories), `content_type: pd` (MLServer's
pandas codec; modelci accepts and ignores parameters) and both outputs, `predict` and
`predict_proba`. Bodies of 1 and 100 rows at 1 and 64 connections and 10,000 rows at 1 and 8.
Every round runs each cell on every server one after the other (the order alternating between
rounds); ratios are taken within a round and the table gives their medians over the rounds, so
load from other processes on the machine affects both sides of a ratio alike.

The model limit (issue 24, aim 1) is the model call alone in process: the same ONNX bytes in a
session with one intra-op thread per CPU, the batch already validated, no HTTP
(`bench_serving_threads.model_limit`). modelci's v2 throughput at 10,000 rows (1 and 8
connections) and 100,000 rows (1 connection) is given as a share of it (modelci only). 100,000
rows at 8 connections is left out: on the shared machine a request there takes tens of seconds,
too long for a round. (wrk's read errors there were modelci's body deadline closing requests
queued, unread, for a large-body slot; the deadline now counts only the time the server reads.)

Cold start is process start to the first 200 from `/v2/models/model/ready`; idle RSS and PSS are
summed over the server's processes after start; peak RSS is the sum of their high-water marks
(VmHWM) at the end; peak PSS, which has no high-water mark, is the largest of the sums sampled
after every wrk run.

    python benchmarks/bench_serving_mlserver.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import BIN, LUA, REPO, Server, env, rss_mb, start, write_bodies, wrk
from bench_serving_threads import model_limit
from report import median, round_options, table, write_section

MLSERVER = "1.7.1"
VENV = REPO / ".bench" / f"mlserver-{MLSERVER}"
MODEL = "model"  # modelci names a model file's model after its stem; MLServer's is set to match
INFER = f"/v2/models/{MODEL}/infer"
READY = f"/v2/models/{MODEL}/ready"
PEER_CELLS = [(1, 1), (1, 64), (100, 1), (100, 64), (10_000, 1), (10_000, 8)]
LIMIT_CELLS = [(10_000, 1), (10_000, 8), (100_000, 1)]


def mlserver_venv() -> Path:
    """The ``mlserver`` executable of MLServer's own environment, installed once and reused
    while its requirements are unchanged."""
    import numpy
    import sklearn

    wanted = [
        f"mlserver=={MLSERVER}",
        f"mlserver-sklearn=={MLSERVER}",
        "uvloop==0.21.0",  # SeldonIO/MLServer#2286
        f"scikit-learn=={sklearn.__version__}",  # joblib files need the version that wrote them
        f"numpy=={numpy.__version__}",
    ]
    stamp = VENV / "requirements.txt"
    executable = VENV / "bin" / "mlserver"
    if executable.exists() and stamp.exists() and stamp.read_text().split() == wanted:
        return executable
    uv = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    python = str(VENV / "bin" / "python")
    print(f"bench-serving-mlserver: installing MLServer {MLSERVER} into {VENV} ...", flush=True)
    subprocess.run(  # noqa: S603
        [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(VENV)], check=True
    )
    subprocess.run(  # noqa: S603
        [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python, *wanted],
        check=True,
    )
    stamp.write_text("\n".join(wanted) + "\n", encoding="utf-8")
    return executable


def mlserver_repository(repo: Path, work: Path) -> Path:
    """A model repository for ``mlserver start``: the pipeline's fitted model, read from its
    skops file and dumped with joblib, and its model-settings.json."""
    import joblib

    from modelci.modelfile import load_model

    folder = work / "mlserver-models" / MODEL
    folder.mkdir(parents=True)
    joblib.dump(load_model(repo / "models" / "model.skops"), folder / "model.joblib")
    settings = {
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder.parent


def write_v2_bodies(repo: Path, work: Path, sizes: list[int]) -> dict[int, Path]:
    """v2 inference requests of the rows ``write_bodies`` sends (the same seed), one tensor per
    column, asking for both outputs."""
    from modelci.config import load_service_params
    from modelci.serving.schema import InputSchema
    from modelci.serving.v2 import LABELS, PROBABILITIES, column_datatype

    schema = InputSchema.from_params(load_service_params(repo / "params.yaml").data)
    bodies = {}
    for size in sizes:
        rows = schema.example_rows(size, seed=size)
        inputs = []
        for column in schema.fields:
            tensor: dict[str, Any] = {
                "name": column.name,
                "shape": [size],
                "datatype": column_datatype(column),
                "data": [row[column.name] for row in rows],
            }
            if tensor["datatype"] == "BYTES":  # MLServer decodes it to str, not bytes
                tensor["parameters"] = {"content_type": "str"}
            inputs.append(tensor)
        request = {
            "parameters": {"content_type": "pd"},  # MLServer: the tensors are a DataFrame
            "inputs": inputs,
            "outputs": [{"name": LABELS}, {"name": PROBABILITIES}],
        }
        path = work / f"v2-{size}.json"
        path.write_text(json.dumps(request), encoding="utf-8")
        bodies[size] = path
    return bodies


def pss_mb(server: Server) -> float:
    return rss_mb(server.process.pid, "Pss", "smaps_rollup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = round_options(parser, 3, 3.0)
    rounds, seconds = args.rounds, args.seconds
    from modelci.serving.workers import cpu_quota
    from tests.process_support import free_port

    cores = cpu_quota()
    loads = [os.getloadavg()]
    mlserver = mlserver_venv()
    work = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
    servers: list[Server] = []
    idle_pss: dict[str, float] = {}
    peak_pss: dict[str, float] = {}
    try:
        repo = work / "repo"
        subprocess.run(  # noqa: S603
            ["git", "clone", "--quiet", str(REPO), str(repo)], check=True  # noqa: S607
        )
        print("bench-serving-mlserver: dvc repro in a fresh clone ...", flush=True)
        subprocess.run(  # noqa: S603
            [str(BIN / "dvc"), "repro", "--quiet"], cwd=repo, env=env(), check=True
        )
        bodies = write_v2_bodies(repo, work, [1, 100, 10_000, 100_000])
        split = write_bodies(repo, work, [10_000, 100_000])  # the model limit's input
        lua = work / "post.lua"
        lua.write_text(LUA, encoding="utf-8")
        models = mlserver_repository(repo, work)
        ours = [str(BIN / "modelci"), "serve", "--model", "models/model.skops"]
        # on a loaded machine, large bodies at 8 connections queue for a large-body slot longer
        # than the default 5 s (then 503): let them wait as long as wrk does
        wait = ["--large-body-wait", "120"]
        modelci = [
            Server(
                f"modelci, {w} worker{'s' * (w > 1)}", [*ours, "--workers", str(w), *wait], READY
            )
            for w in (1, cores)
        ]
        peers = [
            Server(
                f"MLServer, parallel_workers {w}",
                [str(mlserver), "start", str(models)],
                READY,
                port_env="MLSERVER_HTTP_PORT",
                extra_env={
                    "MLSERVER_HOST": "127.0.0.1",
                    "MLSERVER_DEBUG": "false",  # no access log line per request
                    "MLSERVER_GRPC_PORT": str(free_port()),
                    "MLSERVER_METRICS_PORT": str(free_port()),
                    "MLSERVER_PARALLEL_WORKERS": str(w),
                },
            )
            for w in (0, 1, cores)
        ]
        servers = [*modelci, *peers]
        for server in servers:
            start(server, repo, f"sqlite:///{repo / 'mlflow.db'}")
            idle_pss[server.label] = pss_mb(server)
        for index in range(rounds):
            print(f"bench-serving-mlserver: round {index + 1}/{rounds}", flush=True)
            order = servers if index % 2 == 0 else servers[::-1]  # alternate who goes first
            plan = [(cell, order) for cell in PEER_CELLS]
            plan += [(cell, modelci) for cell in LIMIT_CELLS if cell not in PEER_CELLS]
            for cell, group in plan:
                span = min(12.0, max(seconds, 3.0 * (cell[0] // 10_000)))
                print(f"bench-serving-mlserver: {cell[0]} rows, {cell[1]} conns", flush=True)
                for server in group:
                    rps, p50, p99 = wrk(server.port, bodies[cell[0]], cell[1], span, lua, INFER)
                    server.rps.setdefault(cell, []).append(rps)
                    server.p50.setdefault(cell, []).append(p50)
                    server.p99.setdefault(cell, []).append(p99)
                    peak_pss[server.label] = max(peak_pss.get(server.label, 0.0), pss_mb(server))
            loads.append(os.getloadavg())
        peak = {server.label: rss_mb(server.process.pid, "VmHWM") for server in servers}
        limits = {
            size: model_limit(repo, split[size], cores, 10 if size < 100_000 else 3)
            for size in (10_000, 100_000)
        }
    finally:
        for server in servers:
            if server.process is not None:
                server.process.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    loads.append(os.getloadavg())
    memory = {"idle PSS": idle_pss, "peak PSS": peak_pss, "peak RSS": peak}
    body = render(modelci, peers, memory, limits, loads, (cores, rounds, seconds))
    command = "python benchmarks/bench_serving_mlserver.py" + (" --quick" if args.quick else "")
    path = write_section(
        "serving-mlserver", "Serving: beside MLServer on the Open Inference Protocol", body, command
    )
    print(body)
    print(f"bench-serving-mlserver: wrote {path}")


def render(
    modelci: list[Server],
    peers: list[Server],
    memory: dict[str, dict[str, float]],
    limits: dict[int, float],
    loads: list[tuple[float, float, float]],
    run: tuple[int, int, float],
) -> str:
    """The section's text: throughput and ratios, latency, memory, the model limit."""
    servers = [*modelci, *peers]
    cores, rounds, seconds = run
    idle_pss, peak_pss, peak = memory["idle PSS"], memory["peak PSS"], memory["peak RSS"]

    def ratio(a: Server, b: Server, cell: tuple[int, int]) -> float:
        return median([x / y for x, y in zip(a.rps[cell], b.rps[cell], strict=True)])

    one, many = modelci
    pairs = [(one, peers[0]), (one, peers[1]), (many, peers[2])]
    names = {one.label: "modelci 1w", many.label: f"modelci {cores}w"}
    names.update({p.label: f"MLServer pw{w}" for p, w in zip(peers, (0, 1, cores), strict=True)})

    def short(server: Server) -> str:
        return names[server.label]

    throughput = [
        [f"{cell[0]:,}", str(cell[1])]
        + [f"{median(s.rps[cell]):,.1f}" for s in servers]
        + [f"{ratio(a, b, cell):.2f}x" for a, b in pairs]
        for cell in PEER_CELLS
    ]
    throughput_header = [
        "rows",
        "conns",
        *[f"{short(s)} req/s" for s in servers],
        *[f"{short(a)} / {short(b)}" for a, b in pairs],
    ]
    latency = [
        [f"{cell[0]:,}", str(cell[1])]
        + [f"{median(s.p50[cell]) * 1000:.2f} / {median(s.p99[cell]) * 1000:.1f}" for s in servers]
        for cell in PEER_CELLS
    ]
    memory = [
        [
            s.label,
            f"{s.cold_start:.2f}",
            f"{s.idle_rss:.0f}",
            f"{peak[s.label]:.0f}",
            f"{idle_pss[s.label]:.0f}",
            f"{peak_pss[s.label]:.0f}",
        ]
        for s in servers
    ]
    limit_rows = [
        [f"{cell[0]:,}", str(cell[1]), f"{limits[cell[0]]:,.0f}"]
        + [
            f"{rate:,.0f} ({rate / limits[cell[0]]:.0%})"
            for rate in (median(s.rps[cell]) * cell[0] for s in modelci)
        ]
        for cell in LIMIT_CELLS
    ]
    behind = [
        f"{cell[0]:,} rows x {cell[1]} ({short(a)} / {short(b)} {ratio(a, b, cell):.2f}x)"
        for cell in PEER_CELLS
        for a, b in pairs
        if ratio(a, b, cell) < 1
    ]
    load_text = ", ".join(f"{m1:.1f}/{m5:.1f}/{m15:.1f}" for m1, m5, m15 in loads)
    body = (
        f"`POST {INFER}` with the same v2 body (one tensor per column, both outputs) on every "
        f"server, wrk for {seconds:g} s per cell (longer for large bodies), {rounds} alternating "
        f"round(s); requests/s are medians over rounds, ratios medians of per-round ratios. "
        f"MLServer {MLSERVER} + mlserver-sklearn in its own environment (uvloop 0.21.0, the same "
        f"scikit-learn and NumPy), serving the pipeline's fitted model dumped with joblib from "
        f"`models/model.skops`; modelci serves the same file with its build-time ONNX export. "
        f"`pwN` is MLServer's `parallel_workers` (0: inference in the server's own process; "
        f"N >= 1: N worker processes beside the server process). One OpenMP thread per process "
        f"for every server. {cores} CPUs, which wrk shares.\n\n"
        f"The machine is shared with other jobs, so absolute numbers are noisy; only the "
        f"within-round ratios are meant to be read. Load average (1/5/15 min) before, after each "
        f"round and at the end: {load_text}.\n\n"
        + table(throughput_header, throughput)
        + "\n\nLatency, p50 / p99 in ms (medians over rounds):\n\n"
        + table(["rows", "conns", *[short(s) for s in servers]], latency)
        + "\n\n"
        + table(
            [
                "server",
                "cold start s",
                "idle RSS MB",
                "peak RSS MB",
                "idle PSS MB",
                "peak PSS MB (sampled)",
            ],
            memory,
        )
        + "\n\nThe model limit (issue 24, aim 1): the model call alone, in process, on "
        f"{cores} intra-op threads (rows/s), and modelci's v2 throughput in rows/s as a share "
        f"of it:\n\n"
        + table(
            ["rows", "conns", "limit rows/s", *[f"{short(s)} rows/s" for s in modelci]],
            limit_rows,
        )
        + "\n\n"
        + (
            f"- modelci is behind MLServer in: {'; '.join(behind)}.\n"
            if behind
            else "- modelci is ahead of MLServer in every cell.\n"
        )
    )
    return body


if __name__ == "__main__":
    main()

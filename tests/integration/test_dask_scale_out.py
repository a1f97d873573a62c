"""The scale-out, proven (docs/scale.md, "The scale-out"): a table whose in-memory size as pandas
holds it is more than twice one worker's memory limit prepares, trains and evaluates on a real
``dask scheduler`` and two ``dask worker`` processes of that limit, while the local engine's
prepare, in a child process whose data segment is capped at the same limit
(``resource.setrlimit(RLIMIT_DATA)``), fails with a MemoryError.

The table is a churn table as a support system exports it: a customer id shaped like a UUID,
two numbers, two categories, the target, and a free-text ``notes`` column the model does not use
(``data.drop_columns``). The strings make most of its size in pandas (Python objects), as they do
in such exports; the training matrix is the five encoded features, so the fit stays within the
workers (docs/scale.md says what the fit itself needs per row).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess  # nosec B404: runs modelci with fixed arguments
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import VENV_BIN, tool_env
from tests.dask_support import Cluster, dask_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMIT = 500_000_000  # bytes: each worker's --memory-limit and the local engine's RLIMIT_DATA
FILES = 32
ROWS_PER_FILE = 38_000
NOTES = 600  # characters of free text per row
MODELCI = str(VENV_BIN / "modelci")
# Arrow's default pool (jemalloc) reserves address space up front and dies with SIGSEGV when
# RLIMIT_DATA refuses it, and caches what it frees on a worker; the system allocator does neither.
ARROW_ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system"}

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz    ", dtype=np.uint8)


def _strings(block: np.ndarray) -> Any:
    """An Arrow string array whose values are the rows of a fixed-width byte matrix."""
    import pyarrow as pa

    rows, width = block.shape
    offsets = np.arange(rows + 1, dtype=np.int32) * width
    buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(block.tobytes())]
    return pa.Array.from_buffers(pa.string(), rows, buffers)


def churn_part(index: int) -> Any:
    """Partition ``index`` of the table as an Arrow table, from a generator seeded by it."""
    import pyarrow as pa

    rows = ROWS_PER_FILE
    rng = np.random.default_rng(index)
    raw = rng.integers(0, 256, (rows, 16), dtype=np.uint8)
    digits = np.empty((rows, 32), np.uint8)
    digits[:, 0::2], digits[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 15]
    ident = np.full((rows, 36), ord("-"), np.uint8)
    for start, end, at in ((0, 8, 0), (9, 13, 8), (14, 18, 12), (19, 23, 16), (24, 36, 20)):
        ident[:, start:end] = digits[:, at : at + end - start]
    notes = _LETTERS[rng.integers(0, len(_LETTERS), (rows, NOTES), dtype=np.uint8)]
    tenure = rng.integers(0, 72, rows)
    monthly = rng.uniform(10, 120, rows).round(2)
    plan = rng.integers(0, 3, rows)
    region = rng.integers(0, 4, rows)
    score = monthly / 60 - tenure / 24 + (plan == 0) + 0.3 * (region == 1)
    churned = (score + rng.normal(0, 0.5, rows) > 0.2).astype("int64")
    return pa.table(
        {
            "customer_id": _strings(ident),
            "tenure": tenure,
            "monthly": monthly,
            "plan": pa.array(np.array(["basic", "plus", "pro"])[plan]),
            "region": pa.array(np.array(["north", "south", "east", "west"])[region]),
            "notes": _strings(notes),
            "churned": churned,
        }
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The table twice: one Parquet file (what the local engine reads) and the same rows as
    ``FILES`` partition files (what the workers read); and its size as pandas holds it."""
    import pyarrow.parquet as pq

    where = tmp_path_factory.mktemp("scale")
    (where / "parts").mkdir()
    size, rows = 0, 0
    writer: Any = None
    try:
        for index in range(FILES):
            part = churn_part(index)
            pq.write_table(part, where / "parts" / f"part-{index:03d}.parquet")
            if writer is None:
                writer = pq.ParquetWriter(where / "table.parquet", part.schema)
            writer.write_table(part)
            # pandas.read_parquet, as the local engine reads the file, one partition at a time:
            # the deep sizes of the partitions add up to the whole table's (its index aside)
            frame = pd.read_parquet(where / "parts" / f"part-{index:03d}.parquet")
            size += int(frame.memory_usage(deep=True, index=False).sum())
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return {"dir": where, "bytes": size, "rows": rows}


def params(table: dict[str, Any], engine: str, address: str = "") -> dict[str, Any]:
    columns = {
        "tenure": {"type": "int", "min": 0},
        "monthly": {"type": "float", "min": 0},
        "plan": {"type": "category", "categories": ["basic", "plus", "pro"]},
        "region": {"type": "category", "categories": ["north", "south", "east", "west"]},
        "churned": {"type": "int", "min": 0, "max": 1},
    }
    dask = engine == "dask"
    source = table["dir"] / ("parts/*.parquet" if dask else "table.parquet")
    out: dict[str, Any] = {
        "data": {
            "source": str(source),
            "target": "churned",
            "task": "binary",
            "drop_columns": ["customer_id", "notes"],
            "columns": columns,
        },
        "prepare": {"test_size": 0.2, **({"split_key": "customer_id"} if dask else {})},
        "train": {
            "estimator": "xgboost.dask.DaskXGBClassifier" if dask else "xgboost.XGBClassifier",
            "estimator_params": {"n_estimators": 20, "max_depth": 3},
        },
    }
    if dask:
        out["compute"] = {"engine": "dask", "address": address, "partitions": FILES}
    return out


# Runs ARGV with its data segment capped at LIMIT bytes (when LIMIT is not 0) and writes its
# peak resident memory to PEAK. A child forked from the test's process would report the test's
# own peak (Linux keeps the largest resident size a process had, across fork and exec); this
# launcher is small, so the peak it reads with wait4 is the stage's.
LAUNCHER = """
import os, resource, subprocess, sys
limit, peak, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
if limit:
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
process = subprocess.Popen(argv)
_, status, usage = os.wait4(process.pid, 0)
with open(peak, "w") as out:
    out.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def stage(
    repo: Path, name: str, capped: bool, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``modelci NAME`` in ``repo`` (its data segment capped at LIMIT when ``capped``), killed
    after ``timeout`` seconds; returns the finished process and its peak resident memory in
    bytes (0 when it was killed)."""
    peak = repo / f".{name}.peak"
    args = [sys.executable, "-c", LAUNCHER, str(LIMIT if capped else 0), str(peak), MODELCI, name]
    # the launcher leads its own process group, so a timeout kills the stage with it
    process = subprocess.Popen(
        args,
        cwd=repo,
        env=tool_env(**ARROW_ENV),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
    done = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    return done, int(peak.read_text()) if peak.is_file() else 0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Its own scheduler and two workers of LIMIT each (the session's workers carry what earlier
    tests left in their memory), with Arrow on the system allocator, stopped by PID."""
    if dask_cli() is None:
        pytest.skip("the dask CLI is missing: install modelci's dask extra (make install)")
    with Cluster(workers=2, memory_limit=str(LIMIT), env=ARROW_ENV) as up:
        yield up


def test_the_table_is_more_than_twice_a_worker_and_only_the_cluster_takes_it(
    table: dict[str, Any], cluster: Cluster, tmp_path: Path
) -> None:
    assert table["bytes"] > 2 * LIMIT, f"the table is {table['bytes']} bytes as pandas holds it"

    # The local engine under the cap: one partition's rows prepare (the cap leaves room for
    # modelci and its libraries), the whole table fails for want of memory and writes nothing.
    small = tmp_path / "local-one-partition"
    small.mkdir()
    one = params(table, "local")
    one["data"]["source"] = str(table["dir"] / "parts" / "part-000.parquet")
    (small / "params.yaml").write_text(yaml.safe_dump(one, sort_keys=False))
    done, _ = stage(small, "prepare", capped=True)
    assert done.returncode == 0, done.stderr
    local = tmp_path / "local"
    local.mkdir()
    (local / "params.yaml").write_text(yaml.safe_dump(params(table, "local"), sort_keys=False))
    # bounded: before modelci ended the process at once after a MemoryError, Arrow's thread
    # pool hung the interpreter's exit after the refused malloc (two runs in three, here)
    done, _ = stage(local, "prepare", capped=True, timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "modelci prepare: error: out of memory (" in done.stderr, done.stderr
    assert "MemoryError" in done.stderr, done.stderr
    prepared = local / "data/prepared"
    assert not prepared.exists() or not any(prepared.iterdir()), sorted(prepared.iterdir())

    repo = tmp_path / "dask"
    repo.mkdir()
    config = params(table, "dask", cluster.address)
    (repo / "params.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    peaks = {}
    for name in ("source", "prepare", "train", "evaluate"):
        started = time.monotonic()
        done, peaks[name] = stage(repo, name, capped=False)
        assert done.returncode == 0, f"modelci {name}:\n{done.stdout}\n{done.stderr}"
        print(f"modelci {name}: {time.monotonic() - started:.1f} s, peak RSS {peaks[name]} B")
    profile = json.loads((repo / "data/prepared/profile.json").read_text())
    assert profile["rows"]["total"] == table["rows"] == FILES * ROWS_PER_FILE
    assert json.loads((repo / "models/compute.json").read_text())["workers"] == 2
    metrics = json.loads((repo / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.9  # the model learned the rule the rows were drawn from
    # no worker was restarted on the way (a nanny restarts its worker at 95% of the limit)
    for worker in cluster.workers:
        assert "Restarting" not in cluster.log(worker), cluster.log(worker)[-3000:]
    # the runner only coordinates: it never held the table either
    assert max(peaks.values()) < LIMIT, peaks

"""The model's bytes do not depend on the machine: the same data, params and seed give the same
sha256 whatever the thread settings and the cores the process may run on (issue 14), and its ONNX
export is the same whatever the process's hash seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelci.fileio import file_digest
from tests.conftest import tool_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Pins the CPU affinity before numpy and scikit-learn load (their thread pools size themselves
# from it), fits the pipeline's model the way `modelci train` does with train.n_threads set to
# the second argument, prints the model file's sha256.
FIT_AND_HASH = """
import hashlib, os, sys
os.sched_setaffinity(0, {int(cpu) for cpu in sys.argv[1].split(",")})
import pandas as pd
from modelci.config import load_params
from modelci.modelfile import dump_model
from modelci.pipeline.train import fit
params = load_params()
train = params.train.model_copy(update={"n_threads": int(sys.argv[2])})
model = fit(pd.read_parquet("data/prepared/train.parquet"), params.data, train)
print(hashlib.sha256(dump_model(model)).hexdigest())
"""


CPUS = sorted(os.sched_getaffinity(0))
ONE_CORE = str(CPUS[0])
EVERY_CORE = ",".join(str(cpu) for cpu in CPUS)
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to vary the cores")


def fit_sha256(repo: Path, cpus: str, omp_threads: str | None, n_threads: int = 1) -> str:
    env = tool_env()
    env.pop("OMP_NUM_THREADS", None)
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = omp_threads
    done = subprocess.run(
        [sys.executable, "-c", FIT_AND_HASH, cpus, str(n_threads)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@needs_two_cpus
def test_model_bytes_do_not_depend_on_threads_or_cores(pipeline_repo: Path) -> None:
    """Default params (train.n_threads: 1): one core and one OpenMP thread, every core with
    OpenMP's default, every core with one OpenMP thread per core."""
    settings = [(ONE_CORE, "1"), (EVERY_CORE, None), (EVERY_CORE, str(len(CPUS)))]
    digests = {setting: fit_sha256(pipeline_repo, *setting) for setting in settings}
    assert len(set(digests.values())) == 1, digests
    # ... and they are the bytes the pipeline itself wrote.
    assert set(digests.values()) == {file_digest(pipeline_repo / "models/model.skops")}


@needs_two_cpus
def test_two_threads_give_the_same_bytes_on_one_core(pipeline_repo: Path) -> None:
    """scikit-learn caps OpenMP at the CPU count unless OMP_NUM_THREADS is set: the stage sets
    it, so train.n_threads: 2 runs two threads (and gives the same model) on a one-core runner."""
    one_core = fit_sha256(pipeline_repo, ONE_CORE, None, n_threads=2)
    every_core = fit_sha256(pipeline_repo, EVERY_CORE, None, n_threads=2)
    assert one_core == every_core


CONVERT = """
import hashlib, sys
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from modelci.serving.runtime import convert_to_onnx
from modelci.config import Column
from modelci.serving.schema import InputSchema

schema = InputSchema(
    [Column("x", "float"), Column("color", "category", categories=("a", "b"))]
)
frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "color": ["a", "b", "a", "b"]})
features = ColumnTransformer([("num", "passthrough", ["x"]), ("cat", OneHotEncoder(), ["color"])])
model = Pipeline([("f", features), ("m", LogisticRegression())]).fit(frame, [0, 0, 1, 1])
print(hashlib.sha256(convert_to_onnx(model, schema)).hexdigest())
"""


def test_the_onnx_bytes_do_not_depend_on_the_hash_seed() -> None:
    """skl2onnx gathers the opsets of a model in a set: unsorted, their order (and the file's
    bytes, hence the DVC output's hash) changed with PYTHONHASHSEED from one process to the next."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", CONVERT],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("0", "1", "2", "3")
    }
    assert len(digests) == 1, digests

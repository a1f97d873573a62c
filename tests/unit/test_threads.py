"""modelci.threads: the thread count the stages fix for OpenMP and BLAS."""

from __future__ import annotations

import os

import numpy  # noqa: F401 - loads the BLAS pool the limits apply to
import pytest
import sklearn.ensemble  # noqa: F401 - loads scikit-learn's OpenMP runtime
from threadpoolctl import threadpool_info

from modelci.threads import THREAD_VARIABLES, fixed_threads

pytestmark = pytest.mark.unit


def pool_sizes() -> set[int]:
    return {int(pool["num_threads"]) for pool in threadpool_info()}


@pytest.mark.parametrize("n_threads", [1, 3])
def test_every_pool_and_variable_is_set_inside(n_threads: int) -> None:
    with fixed_threads(n_threads):
        assert pool_sizes() == {n_threads}
        assert {os.environ[name] for name in THREAD_VARIABLES} == {str(n_threads)}


def test_environment_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with fixed_threads(1):
        pass
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "OPENBLAS_NUM_THREADS" not in os.environ


def test_environment_is_restored_after_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pytest.raises(RuntimeError), fixed_threads(2):
        raise RuntimeError("fit failed")
    assert "OMP_NUM_THREADS" not in os.environ


def test_zero_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="n_threads must be at least 1"), fixed_threads(0):
        pass

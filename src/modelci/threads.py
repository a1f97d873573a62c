"""A fixed number of threads for the numeric libraries, so results do not depend on the machine.

scikit-learn's OpenMP code (histogram gradient boosting sums gradients with a parallel
reduction) and BLAS split their work by the number of threads, and floating-point addition is
not associative: a different thread count gives a different model, bit for bit. By default both
follow the cores the process may use, so the same data, params and seed gave different model
files on a 1-core and a 2-core runner. :func:`fixed_threads` pins the count to ``train.n_threads``
for everything that runs inside it:

- threadpoolctl limits every OpenMP and BLAS pool loaded in the process;
- ``OMP_NUM_THREADS`` (and the BLAS variables) are set for the duration: scikit-learn otherwise
  caps its OpenMP thread count at the CPU count (``_openmp_effective_n_threads``), which would
  turn a requested 2 into 1 on a one-core machine, and a library first loaded inside the body
  reads its count from them.

With 1 thread every reduction runs in order, so the bytes are the same on any core count. With
more, the count is the same everywhere but OpenMP does not fix the order in which the threads'
partial sums are combined (see docs/scale.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def fixed_threads(n_threads: int) -> Iterator[None]:
    """Run the body with exactly ``n_threads`` OpenMP and BLAS threads; restore on exit."""
    from threadpoolctl import threadpool_limits

    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    previous = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(n_threads) for name in THREAD_VARIABLES})
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

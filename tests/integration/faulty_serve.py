"""``modelci serve`` with injected faults, for the canary test only (never in the shipped server).

Wraps the predictor of the model the server loads (its build-time ONNX export or a runtime built
at start): every tenth prediction raises (a 500), another tenth
sleeps :data:`SLOW_SECONDS` (slow responses), and every score is shifted up by :data:`SHIFT`
(shifted predictions). Counting calls keeps the fault rates exact.

    python tests/integration/faulty_serve.py SERVE-ARGS...
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np

import modelci.serving.server as server
from modelci.cli import main
from modelci.serving.app import ServedModel
from modelci.serving.runtime import Prediction, Predictor

SLOW_SECONDS = 0.4
SHIFT = 0.3


class FaultyPredictor:
    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.runtime = inner.runtime
        self.classes = inner.classes
        self.calls = itertools.count()

    def predict(self, columns: dict[str, Any]) -> Prediction:
        call = next(self.calls)
        if call % 10 == 3:
            raise RuntimeError("injected fault")
        if call % 10 == 7:
            time.sleep(SLOW_SECONDS)
        prediction = self.inner.predict(columns)
        return replace(prediction, scores=np.clip(prediction.scores + SHIFT, 0.0, 1.0))


_load = server.load_served


def load_served(config: server.ServeConfig) -> ServedModel:
    served = _load(config)
    return replace(
        served,
        predictor=FaultyPredictor(served.predictor),
        runtime_note=f"{served.runtime_note} + injected faults",
    )


if __name__ == "__main__":
    server.load_served = load_served
    sys.exit(main(["serve", *sys.argv[1:]]))

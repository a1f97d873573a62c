"""``modelci serve`` with the live input gauges' hooks turned into no-ops: the baseline of
``bench_gauges.py`` (benchmark code; the shipped server has no such switch)."""

from __future__ import annotations

import sys

from modelci.cli import main
from modelci.serving.input_monitor import InputMonitor


def _nothing(*args: object, **kwargs: object) -> None:
    return None


if __name__ == "__main__":
    InputMonitor.observe = _nothing  # type: ignore[method-assign]
    InputMonitor.reject = _nothing  # type: ignore[method-assign]
    sys.exit(main(["serve", *sys.argv[1:]]))

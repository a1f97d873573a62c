"""How `modelci pr repro` reads DVC's log: each stage's status, and how long one that ran took."""

from __future__ import annotations

import pytest

from modelci.ci.repro import parse_log

pytestmark = pytest.mark.unit


def test_parse_log_times_each_stage() -> None:
    lines = [
        (0.0, "Stage 'prepare' didn't change, skipping"),
        (1.0, "Running stage 'train':"),
        (1.1, "> modelci train"),
        (4.0, "Updating lock file 'dvc.lock'"),
        (
            4.5,
            "Stage 'models/fraud/dvc.yaml:export' is cached - skipping run, checking out outputs",
        ),
        (5.0, "Running stage 'evaluate':"),
    ]
    parsed = parse_log(lines, end=7.0)
    assert [(s.name, s.status, s.seconds) for s in parsed] == [
        ("prepare", "unchanged", None),
        ("train", "ran", 3.0),
        ("models/fraud/dvc.yaml:export", "restored", None),
        ("evaluate", "ran", 2.0),
    ]

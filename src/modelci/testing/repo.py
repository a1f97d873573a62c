"""The model repository the plugin checks: where its params and pipeline outputs are.

Every path is relative to the repository root unless absolute. Only ``data:`` is required in
the params file; ``gate:``, ``model_tests:`` and ``train.trusted_types`` are read with their
defaults when the file does not have them, because the other sections may belong to the user's
own stages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from modelci.config import (
    DataParams,
    MetricRule,
    ModelTestsParams,
    TrainParams,
    TrustedTypes,
    checked_model_tests,
    load_data_params,
    load_section,
    read_yaml,
)
from modelci.layout import DEFAULT_PATHS, DVC_YAML, PARAMS

_MODELCI_TRAIN = re.compile(r"(^|\s)modelci\s+train(\s|$)")


@dataclass(frozen=True)
class ModelRepo:
    root: Path
    # Where modelci's own stages write (pipeline.paths), unless the repository says otherwise.
    params: Path = PARAMS
    model: Path = DEFAULT_PATHS.model
    train_split: Path = DEFAULT_PATHS.train
    test_split: Path = DEFAULT_PATHS.test
    metrics: Path = DEFAULT_PATHS.metrics
    pipeline: Path = DVC_YAML

    def path(self, name: str) -> Path:
        """The absolute path of one of the fields above (``"model"``, ``"test_split"`` ...)."""
        value: Path = getattr(self, name)
        return value if value.is_absolute() else self.root / value

    def data(self) -> DataParams:
        return load_data_params(self.path("params"))

    def gate(self) -> dict[str, MetricRule]:
        from modelci.judge.gate import load_gate_rules

        return load_gate_rules(self.path("params"))

    def model_tests(self) -> ModelTestsParams:
        path = self.path("params")
        tests = load_section(path, "model_tests", ModelTestsParams)
        return checked_model_tests(tests, self.data(), str(path))

    def trusted_types(self) -> tuple[str, ...]:
        """``train.trusted_types`` alone: the rest of ``train:`` may be the user's own stage's."""
        return load_section(self.path("params"), "train", TrustedTypes).trusted_types

    def train_params(self) -> TrainParams:
        """The whole ``train:`` section, for retraining with modelci's own train stage."""
        return load_section(self.path("params"), "train", TrainParams)

    def uses_modelci_train(self) -> bool:
        """Whether ``dvc.yaml`` has a stage that runs ``modelci train`` (not the user's own)."""
        path = self.path("pipeline")
        if not path.is_file():
            return False
        raw = read_yaml(path, "pipeline file")
        stages = raw.get("stages") if isinstance(raw, dict) else None
        for stage in (stages or {}).values():
            command = stage.get("cmd") if isinstance(stage, dict) else None
            commands = command if isinstance(command, list) else [command]
            if any(isinstance(c, str) and _MODELCI_TRAIN.search(c) for c in commands):
                return True
        return False

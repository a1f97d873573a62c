"""params.yaml validation: unknown keys, wrong types and impossible values name file and key."""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.config import (
    CanaryParams,
    TrustedTypes,
    load_data_params,
    load_params,
    load_section,
    load_service_params,
    parse_params,
)
from modelci.errors import ConfigError
from tests.conftest import REPO_ROOT
from tests.sources import called_name, package_trees

pytestmark = pytest.mark.unit


@pytest.fixture
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    return copy.deepcopy(loaded)


def error_for(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_params(raw, "params.yaml")
    return caught.value


def test_repository_params_are_valid() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.data.task == "binary"
    assert params.data.target not in params.data.features
    assert params.evaluate.slices


def test_params_are_frozen() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    with pytest.raises(ValueError, match="frozen"):
        params.prepare.seed = 1  # type: ignore[misc]


def test_unknown_key_is_named(raw: dict[str, Any]) -> None:
    raw["train"]["learning_rate"] = 0.1
    assert str(error_for(raw)) == "params.yaml: train.learning_rate: unknown key"


def test_unknown_section_is_named(raw: dict[str, Any]) -> None:
    raw["deploy"] = {}
    assert "params.yaml: deploy: unknown key" in str(error_for(raw))


def test_wrong_type_is_named(raw: dict[str, Any]) -> None:
    raw["prepare"]["seed"] = "forty-two"
    message = str(error_for(raw))
    assert message.startswith("params.yaml: prepare.seed: ")
    assert "integer" in message


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("prepare", "test_size", 1.5, "prepare.test_size: Input should be less than 1"),
        ("prepare", "seed", -1, "prepare.seed: Input should be greater than or equal to 0"),
        ("data", "task", "ranking", "data.task: Input should be 'binary', 'multiclass'"),
        ("data", "min_rows", 0, "data.min_rows: Input should be greater than or equal to 1"),
        ("train", "estimator", "not a path", "train.estimator: String should match pattern"),
        ("train", "n_threads", 0, "train.n_threads: Input should be greater than or equal to 1"),
    ],
)
def test_impossible_values_are_named(
    raw: dict[str, Any], section: str, key: str, value: Any, expected: str
) -> None:
    raw[section][key] = value
    assert expected in str(error_for(raw))


def test_all_problems_are_listed(raw: dict[str, Any]) -> None:
    raw["prepare"]["seed"] = -1
    raw["prepare"]["test_size"] = 0
    error = error_for(raw)
    assert "(and 1 more)" in str(error)
    assert len(error.details) == 2


def test_target_must_be_declared(raw: dict[str, Any]) -> None:
    raw["data"]["target"] = "alive"
    assert "data: target 'alive' is not one of the declared columns" in str(error_for(raw))


def test_slice_must_be_a_feature(raw: dict[str, Any]) -> None:
    raw["evaluate"]["slices"] = ["deck"]
    assert "evaluate.slices: 'deck' is not a declared data column" in str(error_for(raw))


def test_slice_rule_column_must_be_an_evaluated_slice(raw: dict[str, Any]) -> None:
    raw["gate"]["slices"] = [{"column": "embarked", "metric": "accuracy", "min": 0.5}]
    message = str(error_for(raw))
    assert "gate.slices.0.column: 'embarked' is not one of evaluate.slices (gender, class)" in (
        message
    )


def test_column_min_above_max(raw: dict[str, Any]) -> None:
    raw["data"]["columns"]["age"] = {"type": "float", "min": 10, "max": 1}
    assert "data.columns.age: min (10.0) is greater than max (1.0)" in str(error_for(raw))


def test_categories_only_for_category_columns(raw: dict[str, Any]) -> None:
    raw["data"]["columns"]["age"] = {"type": "float", "categories": ["a"]}
    assert "data.columns.age: categories apply to columns of type 'category'" in str(error_for(raw))


def test_regression_target_must_be_numeric(raw: dict[str, Any]) -> None:
    raw["data"]["task"] = "regression"
    raw["data"]["target"] = "gender"
    raw["data"].pop("positive_label")
    raw["evaluate"]["slices"] = ["class"]
    assert "a regression target must be int or float" in str(error_for(raw))


def test_gate_rule_must_be_finite(raw: dict[str, Any]) -> None:
    raw["gate"]["metrics"]["accuracy"]["min"] = float("nan")
    assert "gate.metrics.accuracy: min must be a finite number" in str(error_for(raw))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: parameters file not found"):
        load_params(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  source: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params\.yaml \(line \d+\): invalid YAML"):
        load_params(path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections, got list"):
        load_params(path)


def test_load_data_params_reads_the_schema_alone(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "data:\n  source: d.csv\n  target: y\n  task: regression\n"
        "  columns: {x: {type: float}, y: {type: float}}\n"
        "mytrain: {anything: 1}\n",
        encoding="utf-8",
    )
    data = load_data_params(path)
    assert data.features == ["x"]
    assert data.task == "regression"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mytrain: {}\n", "data: section missing"),
        ("- a list\n", "expected a mapping"),
        ("data: {source: d.csv, target: y, task: nope, columns: {}}\n", "data.task"),
    ],
)
def test_load_data_params_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_data_params(path)


SCHEMA = (
    "data:\n  source: d.csv\n  target: y\n  task: regression\n"
    "  columns: {x: {type: float}, y: {type: float}}\n"
)


def test_load_service_params_needs_only_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(SCHEMA + "mytrain: {lr: 0.1}\ntrain: {my_own: 1, trusted_types: [a.B]}\n")
    params = load_service_params(path)
    assert params.data.features == ["x"]
    assert params.tracking.model_name == "modelci-model"
    assert params.registry.champion_alias == "champion"
    assert params.train is None
    assert params.trusted_types == ("a.B",)


def test_load_service_params_keeps_modelci_train_section() -> None:
    params = load_service_params(REPO_ROOT / "params.yaml")
    full = load_params(REPO_ROOT / "params.yaml")
    assert params.train == full.train
    assert params.trusted_types == full.trusted_types
    assert params.gate == full.gate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tracking: {model_name: ''}\n", "params.yaml: tracking.model_name: "),
        ("registry: {deploy_target: moon}\n", "params.yaml: registry.deploy_target: "),
        ("train: {trusted_types: 3}\n", "params.yaml: train.trusted_types: "),
    ],
)
def test_load_service_params_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(SCHEMA + text)
    with pytest.raises(ConfigError) as caught:
        load_service_params(path)
    assert str(caught.value).startswith(str(tmp_path / message))


def test_minimal_params_take_the_defaults(raw: dict[str, Any]) -> None:
    params = parse_params({"data": raw["data"], "train": {"estimator": raw["train"]["estimator"]}})
    assert params.prepare.test_size == 0.2
    assert params.prepare.null_target == "error"
    assert params.tracking.model_name == "modelci-model"
    assert params.evaluate.slices == ()


def test_a_schema_wide_error_names_the_data_section(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "data: {source: d.csv, target: y, task: regression, columns: {x: {type: float}, "
        "z: {type: float}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"params\.yaml: data: target 'y' is not one of"):
        load_data_params(path)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("k8s_deployment", "Model_Serve", "registry.k8s_deployment: 'Model_Serve' is not a Kub"),
        ("k8s_deployment", "serve;rm -rf /", "registry.k8s_deployment: 'serve;rm -rf /' is not"),
        ("k8s_container", "x" * 64, "registry.k8s_container: 'xxxx"),
        ("k8s_container", "-serve", "DNS-1123 label"),
        ("aws_lambda", {"function": "fn:live"}, "registry.aws_lambda.function: 'fn:live' is not"),
        ("aws_lambda", {"function": "f" * 65}, "is not a Lambda function name or ARN"),
        ("aws_lambda", {"function": "my.fn"}, "is not a Lambda function name or ARN"),
        ("aws_lambda", {"function": "--region=x"}, "is not a Lambda function name or ARN"),
    ],
)
def test_deploy_names_follow_their_platform_s_naming_rules(
    raw: dict[str, Any], key: str, value: Any, expected: str
) -> None:
    raw.setdefault("registry", {})[key] = value
    assert expected in str(error_for(raw))


@pytest.mark.parametrize(
    "function",
    [
        "",
        "titanic-serve",
        "f_1",
        "123456789012:function:f",
        "arn:aws:lambda:eu-west-1:123456789012:function:f",
    ],
)
def test_lambda_function_names_and_arns_are_accepted(raw: dict[str, Any], function: str) -> None:
    raw.setdefault("registry", {})["aws_lambda"] = {"function": function}
    parse_params(raw, "params.yaml")


def _calls(name: str) -> list[str]:
    """The package modules that call ``name`` (as a function or a method)."""
    found = []
    for path, tree in package_trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and called_name(node.func) == name:
                found.append(path.relative_to(REPO_ROOT / "src").as_posix())
                break
    return found


def test_params_files_have_one_error_path() -> None:
    """Every params section is validated through ``config.validated`` (the file and the dotted
    key in one line); no loader catches pydantic's errors on its own."""
    assert _calls("format_validation_error") == ["modelci/config.py"]
    assert _calls("model_validate") == ["modelci/config.py"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data: {}\ncanary: {bake_seconds: -1}\n", "canary.bake_seconds: "),
        ("data: {}\ncanary: []\n", "canary: "),
    ],
)
def test_a_section_s_errors_name_its_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{path}: {message}')}"):
        load_section(path, "canary", CanaryParams)


def test_trusted_types_are_read_alone(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("data: {}\ntrain: {trusted_types: [a.B], own_key: 1}\n")
    assert load_section(path, "train", TrustedTypes).trusted_types == ("a.B",)
    path.write_text("data: {}\ntrain: {trusted_types: 3}\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: train.trusted_types: "):
        load_section(path, "train", TrustedTypes)

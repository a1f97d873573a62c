"""Typed parameters: one frozen model per ``params.yaml`` section, loaded once per command.

Unknown keys, wrong types and impossible values are rejected before any work starts, with an
error naming the file and the dotted key (``params.yaml: train.seed: ...``).
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from modelci.errors import ConfigError
from modelci.layout import DEFAULT_PATHS, PARAMS

DEFAULT_PARAMS = PARAMS

Task = Literal["binary", "multiclass", "regression"]
ColumnType = Literal["int", "float", "category", "bool"]
# The range of an int column's values: what the model is fed (int64).
INT64 = 2**63 - 1
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class ColumnSpec(_Frozen):
    """Declared schema of one input column."""

    type: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str | int | bool, ...] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        numeric = self.type in ("int", "float")
        if not numeric and (self.min is not None or self.max is not None):
            raise ValueError(f"min/max apply to int and float columns, not to {self.type!r}")
        if self.categories is not None and self.type != "category":
            raise ValueError("categories apply to columns of type 'category' only")
        if self.categories is not None and len(self.categories) == 0:
            raise ValueError("categories must not be empty")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in ("int", "float")

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of one value of the column (the serving schema and the OpenAPI
        document's rows): an ``enum`` of the categories, else the JSON type with the bounds
        (an int column is bounded to 64 bits, what the model is fed)."""
        if self.type == "category" and self.categories is not None:
            return {"enum": [*self.categories, *([None] if self.nullable else [])]}
        json_type = {"int": "integer", "float": "number", "bool": "boolean", "category": "string"}
        base = json_type[self.type]
        schema: dict[str, Any] = {"type": [base, "null"] if self.nullable else base}
        if self.min is not None:
            schema["minimum"] = self.min
        if self.max is not None:
            schema["maximum"] = self.max
        if self.type == "int":
            schema.setdefault("minimum", -INT64)
            schema.setdefault("maximum", INT64)
        return schema

    def named(self, name: str) -> Column:
        return Column(name, **dict(self))


class Column(ColumnSpec):
    """A declared column with its name: the one column model that data validation, the serving
    schema and the OpenAPI document are derived from (``DataParams.inputs()``)."""

    name: str

    def __init__(self, name: str, type: ColumnType, **declared: Any) -> None:
        """``Column("size", "float", min=0)``: the name and type positional, as they read."""
        super().__init__(**{"name": name, "type": type, **declared})

    def declaration(self) -> dict[str, Any]:
        """The column as ``/schema`` describes it: its name, type and nullability, then the
        bounds and categories it declares."""
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            **({"min": self.min} if self.min is not None else {}),
            **({"max": self.max} if self.max is not None else {}),
            **({"categories": list(self.categories)} if self.categories else {}),
        }


class DataParams(_Frozen):
    """Where the raw data comes from and what it must look like."""

    source: str = Field(min_length=1)
    target: str = Field(min_length=1)
    task: Task
    positive_label: str | int | bool | None = None
    min_rows: int = Field(default=1, ge=1)
    columns: dict[str, ColumnSpec] = Field(min_length=2)
    # Columns of the raw file that prepare drops before validation (identifiers, free text...).
    drop_columns: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _target_declared(self) -> DataParams:
        if self.target not in self.columns:
            raise ValueError(f"target {self.target!r} is not one of the declared columns")
        target = self.columns[self.target]
        if target.nullable:
            raise ValueError(f"target {self.target!r} must not be nullable")
        if self.task == "regression" and not target.is_numeric:
            raise ValueError(f"a regression target must be int or float, not {target.type!r}")
        if self.task == "binary" and target.categories is not None and len(target.categories) != 2:
            raise ValueError(f"a binary target needs exactly 2 categories, got {target.categories}")
        if self.positive_label is not None and self.task != "binary":
            raise ValueError("positive_label applies to task 'binary' only")
        return self

    @field_validator("drop_columns")
    @classmethod
    def _dropped_not_declared(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        declared = info.data.get("columns") or {}
        for name in value:
            if name in declared:
                raise ValueError(f"{name!r} is also declared in data.columns")
        return value

    @property
    def features(self) -> list[str]:
        return [name for name in self.columns if name != self.target]

    def inputs(self) -> tuple[Column, ...]:
        """The model's input columns (the features), named, in the declared order."""
        return tuple(self.columns[name].named(name) for name in self.features)

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"


_DASK_ADDRESS = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*|(tcp|tls)://[^\s/:]+:[0-9]{1,5}")


class ComputeParams(_Frozen):
    """Where the stages run (docs/scale.md): in this process (``local``, the default) or on a
    Dask cluster (``dask``) at ``address``, with the data cut into ``partitions`` pieces."""

    engine: Literal["local", "dask"] = "local"
    # tcp://host:port (or tls://), or env:VAR to read it from the environment at run time (a
    # secret in CI), so params.yaml names no machine.
    address: str = "env:DASK_SCHEDULER_ADDRESS"
    # Fixed, like a seed: the model's bytes depend on how the rows are cut (docs/scale.md).
    partitions: int = Field(default=8, ge=1, le=100_000)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _DASK_ADDRESS.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a scheduler address: give tcp://HOST:PORT, tls://HOST:PORT or "
                "env:VARIABLE (read from the environment when a stage runs)"
            )
        return value


# What the reusable workflows give every `dvc repro` (and only those steps) of a project, from
# the caller's optional secrets of the same names: the scheduler's address that
# `compute.address: env:DASK_SCHEDULER_ADDRESS` reads, and the credentials s3fs reads an
# s3:// `data.source` with (docs/scale.md, "Credentials in CI"). `modelci init --engine dask`
# writes callers that pass them.
CLUSTER_SECRETS = (
    "DASK_SCHEDULER_ADDRESS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
)


class PrepareParams(_Frozen):
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: NonNegativeInt = 0
    # compute.engine dask: the column whose hash decides a row's split (a row id), or none for a
    # hash of the whole row. The split then depends on the row alone, not on partitions.
    split_key: str | None = Field(default=None, min_length=1)
    # Rows whose target is null: "error" fails validation, "drop" removes them (counted in the
    # data profile).
    null_target: Literal["error", "drop"] = "error"


class TrainParams(_Frozen):
    """The model: modelci's preprocessing + ``estimator``, or your own ``pipeline`` factory.

    ``pipeline`` (``package.module:function``) returning an estimator or Pipeline is the whole
    model; returning a transformer, it is the feature engineering, and ``estimator`` follows it.
    """

    estimator: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    pipeline: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    estimator_params: dict[str, Any] = Field(default_factory=dict)
    seed: NonNegativeInt = 0
    scale_numeric: bool = True
    # Threads for the estimator and the numeric libraries (OpenMP, BLAS) while fitting and
    # predicting. The model's bytes depend on it, not on the machine's cores; 1 is the only value
    # whose bytes are guaranteed the same on every machine (docs/scale.md).
    n_threads: int = Field(default=1, ge=1)
    # Types the safe model loader accepts beyond skops' built-in trusted set. The defaults cover
    # the preprocessing and the estimators of scikit-learn that need it; add your estimator's.
    trusted_types: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _model_named(self) -> TrainParams:
        if self.estimator is None and self.pipeline is None:
            raise ValueError(
                "set estimator (an estimator class) or pipeline (a factory, module:function)"
            )
        if self.estimator_params and self.estimator is None:
            raise ValueError("estimator_params needs estimator (a factory takes no parameters)")
        return self

    @property
    def model_spec(self) -> str:
        """What builds the model, for lineage and the model card."""
        parts = [f"{self.pipeline}()" if self.pipeline else "", self.estimator or ""]
        return " + ".join(part for part in parts if part)


class EvaluateParams(_Frozen):
    slices: tuple[str, ...] = ()
    min_slice_rows: int = Field(default=10, ge=1)


GateMode = Literal["tolerance", "significance", "non_inferiority"]


class MetricRule(_Frozen):
    """Gate rule for one metric: absolute bounds and how a regression against the base is judged.

    ``mode`` (docs/pr-ci.md): ``tolerance`` judges the point estimate (the default);
    ``significance`` fails only a regression whose interval at ``level`` excludes 0;
    ``non_inferiority`` fails unless the interval's worse end stays above ``-margin``. In the two
    statistical modes ``tolerance`` is the point rule used when no interval can be computed.
    """

    min: float | None = None
    max: float | None = None
    tolerance: float | None = Field(default=None, ge=0.0)
    higher_is_better: bool = True
    required: bool = True
    mode: GateMode = "tolerance"
    level: float | None = Field(default=None, gt=0.5, lt=1.0)
    margin: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _finite(self) -> MetricRule:
        for name in ("min", "max", "tolerance", "margin"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.mode == "non_inferiority" and self.margin is None:
            raise ValueError("mode non_inferiority needs margin (the largest tolerated loss)")
        if self.mode != "non_inferiority" and self.margin is not None:
            raise ValueError("margin applies only to mode non_inferiority")
        if self.mode == "tolerance" and self.level is not None:
            raise ValueError("level applies only to modes significance and non_inferiority")
        return self

    @property
    def confidence(self) -> float:
        """The interval's level: ``level``, else 0.95."""
        return 0.95 if self.level is None else self.level


class SliceRule(_Frozen):
    """A rule on one metric over the values of one slice column (``evaluate.slices``)."""

    column: str = Field(min_length=1)
    metric: str = Field(min_length=1)
    min: float | None = None
    max_gap: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _something(self) -> SliceRule:
        if self.min is None and self.max_gap is None:
            raise ValueError("a slice rule needs min or max_gap")
        for name in ("min", "max_gap"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        return self


class BootstrapParams(_Frozen):
    """How the gate's intervals are resampled: fixed seed, so a comment is reproducible."""

    resamples: int = Field(default=2000, ge=100, le=100_000)
    seed: int = Field(default=0, ge=0)


class GateParams(_Frozen):
    metrics: dict[str, MetricRule] = Field(default_factory=dict)
    slices: tuple[SliceRule, ...] = ()
    bootstrap: BootstrapParams = BootstrapParams()


class TrackingParams(_Frozen):
    experiment: str = Field(default="modelci", min_length=1)
    model_name: str = Field(default="modelci-model", min_length=1)


DeployTarget = Literal["none", "registry", "kubernetes", "container", "cloudrun", "lambda"]
_ALIAS = r"^[A-Za-z][A-Za-z0-9_-]{0,254}$"
_PORT = Field(ge=1, le=65535)


class ContainerTargetParams(_Frozen):
    """``container``: blue/green on one Docker or Podman host (docs/deploy.md)."""

    engine: Literal["docker", "podman"] = "docker"
    # A command prefix that runs the engine on another host, e.g. "ssh deploy@vm1" (or leave it
    # empty and set DOCKER_HOST / CONTAINER_HOST in the job's environment).
    ssh: str = ""
    name: str = Field(default="modelci-serve", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,50}$")
    # Where this job reaches the host's ports for the smoke test.
    address: str = Field(default="127.0.0.1", min_length=1)
    ports: tuple[Annotated[int, _PORT], Annotated[int, _PORT]] = (8081, 8082)
    # host: the container shares the host's network and listens on $PORT; publish: -p PORT:8080.
    network: Literal["host", "publish"] = "publish"
    # ports: whatever routes traffic health-checks both ports (the old slot stops once the new
    # one passed); upstream: rewrite a reverse proxy's upstream file, then run reload_command.
    switch: Literal["ports", "upstream"] = "ports"
    upstream_file: str = ""
    upstream_template: str = "server 127.0.0.1:{port};\n"
    reload_command: str = ""
    run_args: tuple[str, ...] = ()
    start_seconds: float = Field(default=30.0, gt=0)  # for the new container to answer /ready

    @model_validator(mode="after")
    def _switch(self) -> ContainerTargetParams:
        if self.ports[0] == self.ports[1]:
            raise ValueError("ports must be two different ports (blue, green)")
        if self.switch == "upstream" and not self.upstream_file:
            raise ValueError("switch: upstream needs upstream_file")
        if "{port}" not in self.upstream_template:
            raise ValueError("upstream_template must contain {port}")
        return self


class CloudRunParams(_Frozen):
    """``cloudrun``: a Knative ``Service`` applied with ``gcloud run services replace``."""

    service: str = Field(default="modelci-serve", pattern=r"^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$")
    region: str = ""
    project: str = ""
    port: int = Field(default=8080, ge=1, le=65535)
    memory: str = Field(default="1Gi", min_length=1)
    cpu: str = Field(default="1", min_length=1)
    max_instances: int = Field(default=10, ge=1)
    manifest: str = Field(default=".modelci/deploy/cloudrun-service.yaml", min_length=1)


# A DNS-1123 label, Kubernetes' rule for container names (and the stricter of its rules for a
# Deployment's name, which also becomes part of its pods' names and hostnames).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# FunctionName of Lambda's UpdateFunctionCode (AWS API reference), without the `:qualifier` part:
# the alias is its own key. A bare name is at most 64 characters, an ARN at most 140.
_LAMBDA_FUNCTION = re.compile(
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?(?P<name>[a-zA-Z0-9_-]{1,64})"
)


def _k8s_name(value: str) -> str:
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes name (a DNS-1123 label: at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit)"
        )
    return value


class LambdaParams(_Frozen):
    """``lambda``: ``aws lambda update-function-code --publish`` and an alias shift."""

    function: str = ""
    alias: str = Field(default="live", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
    region: str = ""

    @field_validator("function")
    @classmethod
    def _function_name(cls, value: str) -> str:
        if value and (len(value) > 140 or not _LAMBDA_FUNCTION.fullmatch(value)):
            raise ValueError(
                f"{value!r} is not a Lambda function name or ARN (a name is 1-64 letters, "
                "digits, '-' and '_'; an ARN arn:aws:lambda:REGION:ACCOUNT:function:NAME, at "
                "most 140 characters; no ':alias', which is the alias key)"
            )
        return value


class RegistryParams(_Frozen):
    """Release: registry aliases and the deploy target (model name: ``tracking.model_name``)."""

    champion_alias: str = Field(default="champion", pattern=_ALIAS)
    previous_alias: str = Field(default="previous", pattern=_ALIAS)
    deploy_target: DeployTarget = "none"
    k8s_manifests: str = Field(default="deploy/k8s", min_length=1)
    k8s_deployment: str = "modelci-serve"
    k8s_container: str = "serve"
    container: ContainerTargetParams = Field(default_factory=ContainerTargetParams)
    cloudrun: CloudRunParams = Field(default_factory=CloudRunParams)
    aws_lambda: LambdaParams = Field(default_factory=LambdaParams)

    _names = field_validator("k8s_deployment", "k8s_container")(_k8s_name)

    @model_validator(mode="after")
    def _distinct(self) -> RegistryParams:
        if self.champion_alias == self.previous_alias:
            raise ValueError("champion_alias and previous_alias must differ")
        return self


class FeatureThreshold(_Frozen):
    """A per-feature override of the drift thresholds (``monitor.features.NAME``)."""

    psi: float | None = Field(default=None, gt=0.0)
    max_null_rate_increase: float | None = Field(default=None, ge=0.0, le=1.0)
    ignore: bool = False


class MonitorParams(_Frozen):
    """Production monitoring: when ``modelci monitor drift`` calls a production window drifted.

    A feature drifts when its PSI reaches ``psi`` (effect size) and, unless its type's test is
    ``none``, the test's p-value adjusted across features (``correction``) is below ``alpha``
    (significance); or when its null rate rose by more than ``max_null_rate_increase``. The
    window drifts when the share of drifted features exceeds ``max_drifted_share``, or when the
    model's predictions drift (``prediction_psi``). Windows with fewer than ``min_rows`` rows are
    refused. Every key is optional; see docs/monitoring.md.
    """

    reference: str = Field(default=DEFAULT_PATHS.train.as_posix(), min_length=1)
    min_rows: int = Field(default=200, ge=1)
    psi: float = Field(default=0.2, gt=0.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    correction: Literal["holm", "bonferroni", "bh", "none"] = "holm"
    numeric_test: Literal["ks", "none"] = "ks"
    categorical_test: Literal["chi2", "none"] = "chi2"
    max_null_rate_increase: float = Field(default=0.1, ge=0.0, le=1.0)
    max_drifted_share: float = Field(default=0.0, ge=0.0, lt=1.0)
    prediction_psi: float = Field(default=0.2, gt=0.0)
    # The model's predictions (the cost that grows with the window) are compared on a seeded
    # random sample of at most this many rows per side.
    prediction_rows: int = Field(default=100_000, ge=100)
    features: dict[str, FeatureThreshold] = Field(default_factory=dict)
    # Open a retraining pull request (the retrain workflow) when the window drifts.
    retrain: bool = False


class SloParams(_Frozen):
    """Service-level objectives of the served model, over the scored endpoints (/predict and
    /invocations). The alert rules (``modelci monitor alert-rules``) and the canary analysis read
    them.
    """

    # Share of scored requests answered with a 5xx.
    max_error_ratio: float = Field(default=0.01, ge=0.0, le=1.0)
    max_p99_latency_seconds: float = Field(default=0.25, gt=0.0)
    # Refused requests' schema problems per scored request (clients sending the wrong schema).
    max_violation_ratio: float = Field(default=0.05, ge=0.0)
    # A feature's (or the prediction's) window mean this many standard deviations away from its
    # own last day is drift.
    drift_z: float = Field(default=4.0, gt=0.0)
    # The null ratio of a feature rising this far above its own last day is drift.
    max_null_ratio_rise: float = Field(default=0.1, gt=0.0, le=1.0)
    for_minutes: int = Field(default=5, ge=1, le=1440)

    @model_validator(mode="after")
    def _finite(self) -> SloParams:
        for name in (
            "max_error_ratio",
            "max_p99_latency_seconds",
            "max_violation_ratio",
            "drift_z",
        ):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")
        return self


_MATCHER = r'[A-Za-z_]\w*\s*(=|!=|=~|!~)\s*"[^"\\]*"'
_SELECTOR = rf"^\{{\s*{_MATCHER}(\s*,\s*{_MATCHER})*\s*\}}$"


class CanaryParams(_Frozen):
    """Canary analysis: the challenger serves beside the champion for ``bake_seconds`` and is
    promoted only if it holds the SLOs and stays close to the champion."""

    bake_seconds: float = Field(default=300.0, gt=0.0)
    interval_seconds: float = Field(default=30.0, gt=0.0)
    # Scored requests each server must have answered in the window for a verdict.
    min_requests: int = Field(default=200, ge=1)
    # Challenger p99 over champion p99.
    max_p99_latency_ratio: float = Field(default=1.5, ge=1.0)
    # A champion p99 below this counts as this in the ratio: sub-floor differences are noise.
    p99_ratio_floor_seconds: float = Field(default=0.025, ge=0.0)
    # Challenger error ratio minus the champion's.
    max_error_ratio_increase: float = Field(default=0.005, ge=0.0, le=1.0)
    # Largest gap between the two servers' prediction-score CDFs (histogram buckets), 0..1.
    max_prediction_shift: float = Field(default=0.1, gt=0.0, le=1.0)
    # Not enough traffic to decide: roll back (safe) or promote.
    on_inconclusive: Literal["rollback", "promote"] = "rollback"
    # PromQL label matchers of each server's series (the scrape config's labels).
    champion_selector: str = '{track="champion"}'
    challenger_selector: str = '{track="canary"}'

    @field_validator("champion_selector", "challenger_selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        if not re.fullmatch(_SELECTOR, value):
            raise ValueError(
                f'expected PromQL label matchers such as {{track="canary"}}, got {value!r}'
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CanaryParams:
        if self.interval_seconds > self.bake_seconds:
            raise ValueError(
                f"interval_seconds ({self.interval_seconds:g}) is longer than bake_seconds "
                f"({self.bake_seconds:g})"
            )
        if self.champion_selector == self.challenger_selector:
            raise ValueError("champion_selector and challenger_selector must differ")
        return self


Value = str | int | float | bool | None
Row = dict[str, Value]


class _Case(_Frozen):
    """Fields every declared model test shares: its name (shown when it fails) and the score."""

    name: str = Field(min_length=1)
    # The class whose probability is the score (classification); the predicted value otherwise.
    # A binary task defaults to data.positive_label (else the last class).
    score_of: str | int | bool | None = None


class MinimumFunctionalityCase(_Case):
    """One row and what the model must say about it: a label, or bounds on its score."""

    row: Row = Field(default_factory=dict)
    predicts: str | int | bool | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _expectation(self) -> MinimumFunctionalityCase:
        if self.predicts is None and self.min is None and self.max is None:
            raise ValueError("give predicts (a label) or min/max (bounds on the score)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class InvarianceCase(_Case):
    """Changing ``column`` (to each of ``values``, or by ``shift``) must not change the output."""

    column: str = Field(min_length=1)
    values: tuple[Value, ...] | None = None
    shift: float | None = None
    # The rows perturbed; none means every row of the test split.
    rows: tuple[Row, ...] | None = None
    max_change: float | None = Field(default=None, ge=0.0)
    same_label: bool = False
    # The share of rows that must hold (1.0: all of them).
    min_share: float = Field(default=1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _perturbation(self) -> InvarianceCase:
        if (self.values is None) == (self.shift is None):
            raise ValueError("give exactly one of values (set the column) or shift (add to it)")
        if self.values is not None and len(self.values) == 0:
            raise ValueError("values must not be empty")
        if self.max_change is None and not self.same_label:
            raise ValueError("give max_change (bound on the score change) or same_label: true")
        return self


class DirectionalCase(_Case):
    """Changing ``column`` from ``from`` to ``to`` must move the score in ``direction``."""

    column: str = Field(min_length=1)
    before: Value = Field(alias="from")
    after: Value = Field(alias="to")
    direction: Literal["increase", "decrease"]
    rows: tuple[Row, ...] = ({},)
    # The least change that counts as moving in the direction.
    min_change: float = Field(default=0.0, ge=0.0)


class ModelTestsParams(_Frozen):
    """Behavioural tests of the produced model, run by the pytest plugin (``modelci.testing``).

    Each row is merged over ``defaults``, so a case names only the columns it is about.
    """

    defaults: Row = Field(default_factory=dict)
    minimum_functionality: tuple[MinimumFunctionalityCase, ...] = ()
    invariance: tuple[InvarianceCase, ...] = ()
    directional: tuple[DirectionalCase, ...] = ()


def _check_row(where: str, row: Row, data: DataParams, complete: bool) -> None:
    unknown = sorted(set(row) - set(data.features))
    if unknown:
        raise ValueError(f"{where}: {', '.join(map(repr, unknown))} is not a declared feature")
    missing = [name for name in data.features if name not in row]
    if complete and missing:
        raise ValueError(
            f"{where}: no value for {', '.join(map(repr, missing))} "
            "(give it here or in model_tests.defaults)"
        )


def check_model_tests(tests: ModelTestsParams, data: DataParams) -> None:
    """Cross-check the declared cases against the schema; the error names the case's key.

    Run by ``check-params`` and by the pytest plugin, not by the stages: a case naming a column
    an experiment dropped fails the model tests, not ``dvc repro``.
    """
    _check_row("model_tests.defaults", tests.defaults, data, complete=False)

    def check_case(where: str, case: _Case, column: str | None) -> None:
        if column is not None and column not in data.features:
            raise ValueError(f"{where}.column: {column!r} is not a declared feature")
        if case.score_of is not None and not data.is_classification:
            raise ValueError(f"{where}.score_of: applies to classification tasks only")

    for index, mf in enumerate(tests.minimum_functionality):
        where = f"model_tests.minimum_functionality.{index}"
        check_case(where, mf, None)
        _check_row(f"{where}.row", {**tests.defaults, **mf.row}, data, complete=True)
        if mf.predicts is not None and not data.is_classification:
            raise ValueError(f"{where}.predicts: applies to classification; use min/max")
        if mf.predicts is None and data.task == "multiclass" and mf.score_of is None:
            raise ValueError(f"{where}.score_of: name the class whose probability min/max bound")
    for index, inv in enumerate(tests.invariance):
        where = f"model_tests.invariance.{index}"
        check_case(where, inv, inv.column)
        for number, row in enumerate(inv.rows or ()):
            _check_row(f"{where}.rows.{number}", {**tests.defaults, **row}, data, complete=True)
        if inv.shift is not None and not data.columns[inv.column].is_numeric:
            raise ValueError(f"{where}.shift: {inv.column!r} is not a numeric column")
        if inv.same_label and not data.is_classification:
            raise ValueError(f"{where}.same_label: applies to classification; use max_change")
    for index, dc in enumerate(tests.directional):
        where = f"model_tests.directional.{index}"
        check_case(where, dc, dc.column)
        for number, row in enumerate(dc.rows):
            merged = {**tests.defaults, **row, dc.column: dc.before}
            _check_row(f"{where}.rows.{number}", merged, data, complete=True)
        if data.task == "multiclass" and dc.score_of is None:
            raise ValueError(f"{where}.score_of: name the class whose probability should move")


class Params(_Frozen):
    data: DataParams
    prepare: PrepareParams = PrepareParams()
    train: TrainParams
    evaluate: EvaluateParams = EvaluateParams()
    gate: GateParams = GateParams()
    tracking: TrackingParams = TrackingParams()
    registry: RegistryParams = RegistryParams()
    model_tests: ModelTestsParams = ModelTestsParams()
    monitor: MonitorParams = MonitorParams()
    slo: SloParams = SloParams()
    canary: CanaryParams = CanaryParams()
    compute: ComputeParams = ComputeParams()

    @property
    def trusted_types(self) -> tuple[str, ...]:
        return self.train.trusted_types

    @model_validator(mode="after")
    def _cross_section(self) -> Params:
        check_monitor(self.monitor, self.data)
        for column in self.evaluate.slices:
            if column not in self.data.columns:
                raise ValueError(f"evaluate.slices: {column!r} is not a declared data column")
            if column == self.data.target:
                raise ValueError(f"evaluate.slices: {column!r} is the target column")
        key = self.prepare.split_key
        if key is not None and key not in self.data.columns and key not in self.data.drop_columns:
            raise ValueError(
                f"prepare.split_key: {key!r} is neither a declared column nor in data.drop_columns"
            )
        if key is not None and self.compute.engine == "local":
            raise ValueError("prepare.split_key: applies to compute.engine dask only")
        for index, rule in enumerate(self.gate.slices):
            if rule.column not in self.evaluate.slices:
                raise ValueError(
                    f"gate.slices.{index}.column: {rule.column!r} is not one of evaluate.slices "
                    f"({', '.join(self.evaluate.slices) or 'none declared'})"
                )
        return self


class TrustedTypes(BaseModel):
    """``train.trusted_types`` alone, read whatever the rest of ``train:`` holds (it may be the
    user's own stage's section)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)

    trusted_types: tuple[str, ...] = ()


class ServiceParams(_Frozen):
    """What serving and the registry read: the schema plus optional sections with defaults.

    Every other section (modelci's pipeline sections or the user's own) is ignored, so a
    repository whose training is its own stage works with ``data:`` alone. ``train`` is modelci's
    train section when it is one (recorded in the lineage); ``trusted_types`` is read from
    ``train.trusted_types`` whatever the rest of that section holds.
    """

    data: DataParams
    gate: GateParams = GateParams()
    tracking: TrackingParams = TrackingParams()
    registry: RegistryParams = RegistryParams()
    train: TrainParams | None = None
    trusted_types: tuple[str, ...] = ()


# What serve, register, promote, rollback and status accept: the full params or the service view.
ReleaseParams = Params | ServiceParams
SERVICE_SECTIONS = ("data", "gate", "tracking", "registry")


def check_monitor(monitor: MonitorParams, data: DataParams) -> None:
    """``monitor.features`` names declared features only."""
    for name in monitor.features:
        if name not in data.features:
            raise ValueError(f"monitor.features: {name!r} is not a declared feature")


def checked_model_tests(tests: ModelTestsParams, data: DataParams, source: str) -> ModelTestsParams:
    """``tests`` cross-checked against ``data``; the ConfigError names the file and the key."""
    try:
        check_model_tests(tests, data)
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None
    return tests


def format_validation_error(source: str, error: ValidationError, key: str = "") -> list[str]:
    """One readable line per problem: ``params.yaml: train.seed: Input should be ...``.

    ``key`` is where the validated mapping sits in the file (``data`` for the data section), so
    every line names the dotted key from the top of the file.
    """
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        where = ".".join(str(part) for part in (key, *item["loc"]) if part != "")
        lines.append(f"{source}: {where or '<top level>'}: {message}")
    return lines


ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], raw: Any, source: str, key: str = "") -> ModelT:
    """``raw`` validated as ``model``: the one error path of every params loader.

    The ConfigError's line names the file and the dotted key of the first problem, with
    ``(and N more)`` when there are several; ``details`` holds one line per problem.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        lines = format_validation_error(source, error, key)
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ConfigError(lines[0] + more, details=lines) from None


def read_yaml(path: Path, what: str = "parameters file") -> Any:
    """Parse a YAML file; a missing, unreadable or malformed one is a one-line ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what}: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {error}".splitlines()[0]) from None


def sections(raw: Any, source: str) -> dict[str, Any]:
    """A parsed params file's top level, which must be a mapping of sections."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    return raw


def read_sections(path: Path) -> dict[str, Any]:
    """The one reader of a params file: its sections, every problem a one-line ConfigError."""
    return sections(read_yaml(path), str(path))


def parse_params(raw: Any, source: str = str(DEFAULT_PARAMS)) -> Params:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    return validated(Params, sections(raw, source), source)


def load_params(path: Path = DEFAULT_PARAMS) -> Params:
    """Read and validate ``params.yaml``."""
    return parse_params(read_yaml(path), str(path))


def _sections_with_data(path: Path) -> dict[str, Any]:
    raw = read_sections(path)
    if "data" not in raw:
        raise ConfigError(f"{path}: data: section missing (the schema of the model's columns)")
    return raw


def load_service_params(path: Path = DEFAULT_PARAMS) -> ServiceParams:
    """Read the schema and the optional sections serving and the registry use (see
    ``ServiceParams``); errors name the file and the dotted key."""
    raw = _sections_with_data(path)
    chosen = {name: raw[name] for name in SERVICE_SECTIONS if name in raw}
    train = raw.get("train")
    if isinstance(train, dict):
        chosen["trusted_types"] = validated(TrustedTypes, train, str(path), "train").trusted_types
        with contextlib.suppress(ValidationError):  # else not modelci's: only trusted_types
            chosen["train"] = TrainParams.model_validate(train)
    return validated(ServiceParams, chosen, str(path))


def load_data_params(path: Path = DEFAULT_PARAMS) -> DataParams:
    """Read and validate only the ``data:`` section (the schema), ignoring every other section.

    Serving, the registry and the model tests need the schema alone, so they work in a repository
    whose other sections belong to the user's own stages.
    """
    return validated(DataParams, _sections_with_data(path)["data"], str(path), "data")


def load_section(path: Path, name: str, model: type[ModelT]) -> ModelT:
    """Read and validate one optional section, with its defaults when the file does not have it.

    For tools that need a section or two of a ``params.yaml`` whose other sections may belong to
    the user's own stages (the pytest plugin reads ``gate:`` and ``model_tests:`` this way).
    """
    section = read_sections(path).get(name)
    return validated(model, {} if section is None else section, str(path), name)

"""The serving image and the Kubernetes manifests, checked offline (no Docker, no cluster).

The kustomize overlays are rendered with ``kubectl kustomize`` (or ``kustomize build``) when one
is installed, else with the small renderer below (which covers the features our overlays use and
is checked against kubectl when both are available); every rendered object is validated against
the Kubernetes OpenAPI schemas with kubernetes-validate, in strict mode.
"""

from __future__ import annotations

import copy
import functools
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

K8S = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ["overlays/staging", "overlays/production", "."]
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]


# -- a minimal kustomize -----------------------------------------------------------------


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as our patches need it: maps merge, lists of named maps merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    named = (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    )
    if named:
        out_list = [copy.deepcopy(item) for item in patch]
        patched = {item["name"] for item in patch}
        for item in base:
            if item["name"] in patched:
                index = next(i for i, p in enumerate(out_list) if p["name"] == item["name"])
                out_list[index] = _merge(item, out_list[index])
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(patch)


def _json_patch(doc: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    for operation in operations:
        *parents, last = operation["path"].strip("/").split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if operation["op"] in ("replace", "add"):
            node[last] = operation["value"]
        elif operation["op"] == "remove":
            del node[last]
        else:
            raise NotImplementedError(operation["op"])


def _set_labels(doc: dict[str, Any], pairs: dict[str, str], selectors: bool) -> None:
    doc.setdefault("metadata", {}).setdefault("labels", {}).update(pairs)
    if not selectors:
        return
    spec = doc.get("spec", {})
    if doc["kind"] == "Service":
        spec.setdefault("selector", {}).update(pairs)
    elif "selector" in spec:
        spec["selector"].setdefault("matchLabels", {}).update(pairs)
    if "template" in spec:
        spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def python_kustomize(directory: Path) -> list[dict[str, Any]]:
    config = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    docs: list[dict[str, Any]] = []
    for resource in config.get("resources", []):
        path = directory / resource
        docs += python_kustomize(path) if path.is_dir() else _load_all(path)
    for patch in config.get("patches", []):
        if "path" in patch:
            for change in _load_all(directory / patch["path"]):
                for i, doc in enumerate(docs):
                    same = (doc["kind"], doc["metadata"]["name"])
                    if same == (change["kind"], change["metadata"]["name"]):
                        docs[i] = _merge(doc, change)
        else:
            target = patch["target"]
            for doc in docs:
                if doc["kind"] == target["kind"] and doc["metadata"]["name"] == target["name"]:
                    _json_patch(doc, yaml.safe_load(patch["patch"]))
    for label in config.get("labels", []):
        for doc in docs:
            _set_labels(doc, label["pairs"], label.get("includeSelectors", False))
    for image in config.get("images", []):
        for doc in docs:
            for container in (
                doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            ):
                if container["image"] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    if "namespace" in config:
        for doc in docs:
            doc["metadata"]["namespace"] = config["namespace"]
    return docs


def kustomize_binary() -> list[str] | None:
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


@functools.cache
def _kustomize_output(command: tuple[str, ...], directory: Path) -> str:
    """The binary's rendering of ``directory``, run once per session: the overlays are files
    of this checkout, and 18 tests read the same three renderings."""
    done = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def render(directory: Path) -> list[dict[str, Any]]:
    """The overlay's objects, parsed afresh on every call (a test may change its copy)."""
    command = kustomize_binary()
    if command is None:
        return python_kustomize(directory)
    return [doc for doc in yaml.safe_load_all(_kustomize_output(tuple(command), directory)) if doc]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in docs}


# -- manifests ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_are_valid_kubernetes(overlay: str, version: str) -> None:
    import kubernetes_validate

    docs = render(K8S / overlay)
    assert {doc["kind"] for doc in docs} == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_python_renderer_matches_kustomize(overlay: str) -> None:
    if kustomize_binary() is None:
        pytest.skip("no kubectl or kustomize binary to compare with")
    assert sorted(python_kustomize(K8S / overlay), key=str) == sorted(
        render(K8S / overlay), key=str
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_probes_resources_and_security(overlay: str) -> None:
    kinds = by_kind(render(K8S / overlay))
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert deployment["metadata"]["name"] == "modelci-serve"  # registry.k8s_deployment
    assert container["name"] == "serve"  # registry.k8s_container
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {item["name"]: item for item in container["env"]}
    assert env["MODELCI_MODEL_URI"]["value"].startswith("models:/")
    assert env["MODELCI_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    drain = float(env["MODELCI_DRAIN_SECONDS"]["value"])
    graceful = float(env["MODELCI_GRACEFUL_TIMEOUT"]["value"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > drain + graceful
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {"/tmp", env["MODELCI_PREDICTION_LOG"]["value"]} <= mounts  # noqa: S108


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_and_hpa_point_at_the_deployment(overlay: str) -> None:
    kinds = by_kind(render(K8S / overlay))
    deployment, service, hpa = (
        kinds["Deployment"],
        kinds["Service"],
        kinds["HorizontalPodAutoscaler"],
    )
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels.items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


def test_overlays_differ_where_they_should() -> None:
    staging = by_kind(render(K8S / "overlays/staging"))
    production = by_kind(render(K8S / "overlays/production"))
    assert staging["Deployment"]["metadata"]["namespace"] == "modelci-staging"
    assert "namespace" not in production["Deployment"]["metadata"]
    assert staging["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] < (
        production["HorizontalPodAutoscaler"]["spec"]["minReplicas"] * 2
    )
    assert by_kind(render(K8S)) == production


# -- Dockerfile --------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions per stage as (INSTRUCTION, arguments), continuation lines joined."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    preamble, *stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    args = dict(a.split("=", 1) for i, a in preamble if i == "ARG" and "=" in a)
    named: set[str] = set()
    for stage in stages:
        image, *alias = stage[0][1].split()
        image = args.get(image.strip("${}"), image)
        if image not in named:  # a stage built on an earlier stage inherits its pin
            assert "slim" in image
            assert "@sha256:" in image, "pin the base image by digest"
        named.update(alias[-1:])
    final = stages[-1]
    instructions = [i for i, _ in final]
    users = [a for i, a in final if i == "USER"]
    assert users, "the final stage must set USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in instructions
    assert "EXPOSE" in instructions
    copies = [a for i, a in final if i == "COPY"]
    assert any(a.startswith("--from=build") for a in copies)
    entrypoint = next(a for i, a in final if i == "ENTRYPOINT")
    assert entrypoint.startswith("["), "exec form, so SIGTERM reaches the server"


def test_final_stage_installs_no_build_tools() -> None:
    final = dockerfile_stages()[-1]
    runs = " ".join(a for i, a in final if i == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "pip install", "uv ", "git"):
        assert tool not in runs, tool
    build = next(s for s in dockerfile_stages()[1:] if s[0][1].endswith(" AS build"))
    assert "uv" in " ".join(a for i, a in build if i == "RUN")


def _build_args() -> dict[str, str]:
    """Every ``ARG NAME="VALUE"`` of the Dockerfile, quotes removed."""
    return {
        name: value.strip('"')
        for stage in dockerfile_stages()
        for instruction, arguments in stage
        if instruction == "ARG" and "=" in arguments
        for name, value in [arguments.split("=", 1)]
    }


@pytest.mark.parametrize(
    ("variant", "absent", "present"),
    [
        ("onnx", {"scikit-learn", "scipy", "pandas", "skops", "skl2onnx", "onnx"}, set()),
        ("sklearn", set(), {"scikit-learn", "scipy", "pandas", "skops", "skl2onnx", "onnx"}),
    ],
)
def test_each_image_variant_installs_what_it_says(
    variant: str, absent: set[str], present: set[str]
) -> None:
    """The locked packages each variant's build stage exports (the same ``uv export`` as its RUN),
    without building it: the default (onnx) variant has ONNX Runtime and none of the fallback."""
    from tests.conftest import uv_binary

    args = _build_args()
    assert args["SERVE_VARIANT"] == "onnx", "the ONNX-only image is the default"
    prune = args["SERVE_PRUNE"].split()
    if variant == "onnx":
        prune += args["ONNX_VARIANT_PRUNE"].split()
    command = [uv_binary(), "export", "--frozen", "--no-default-groups", "--no-emit-project",
               "--no-hashes", "--no-annotate", "--no-header"]  # fmt: skip
    command += [f"--extra={name}" for name in args["SERVE_EXTRAS"].split()]
    command += [f"--prune={name}" for name in prune]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    names = {line.split("==")[0] for line in done.stdout.splitlines() if "==" in line}
    assert {"onnxruntime", "numpy", "uvicorn", "prometheus-client"} <= names
    assert not names & absent
    assert present <= names


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert lines[lines.index("*")] == "*", "deny by default"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for instruction, arguments in (i for stage in dockerfile_stages() for i in stage):
        if instruction == "COPY" and not arguments.startswith("--from"):
            copied.update(p.rstrip("/*") for p in arguments.split()[:-1])
    assert copied <= allowed, copied - allowed
    for path in copied - {"models/model.skops", "models/onnx"}:  # made by dvc repro
        assert (REPO_ROOT / path).exists(), path
    assert not allowed & {".venv", ".git", "mlflow.db", "mlruns", "data", "models"}
    # Of the pipeline's outputs, only the model files the image serves.
    assert {path for path in allowed if path.startswith("models/")} == {
        "models/model.skops",
        "models/onnx",
    }


def healthcheck_command() -> list[str]:
    final = dockerfile_stages()[-1]
    arguments = next(a for i, a in final if i == "HEALTHCHECK")
    command = arguments.split(" CMD ", 1)[1].strip()
    import json

    return (
        [str(part) for part in json.loads(command)]
        if command.startswith("[")
        else (shlex.split(command))
    )


def test_healthcheck_uses_only_the_python_standard_library() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/health" in command[2]

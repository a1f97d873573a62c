"""``modelci deploy``: ship the champion to a pluggable target, smoke-test it, roll back on failure.

Targets (``registry.deploy_target`` in params.yaml, or ``--target``):

- ``none``: nothing is deployed; the result says so (a summary never pretends).
- ``registry``: registry only; ``@champion`` already moved, servers that follow the alias
  (``modelci serve`` polling ``models:/NAME@champion``) pick it up. The smoke test runs when a
  URL is given.
- ``kubernetes``: with a kube config (the ``KUBE_CONFIG`` secret's content in the environment),
  ``kubectl apply -k <manifests>``, ``kubectl set image`` to the pushed image digest and
  ``kubectl rollout status``; without one the target is skipped and the summary says so.

The model's artifact is downloaded and verified against its registered sha256 before anything
is deployed. When the smoke test fails, the deployment is undone (``kubectl rollout undo``),
``@champion`` is rolled back to ``@previous`` with the reason recorded, and the command fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404: kubectl with fixed argument lists
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from modelci.config import ReleaseParams
from modelci.errors import ModelCIError
from modelci.registry.core import Registry, Version, open_registry


class DeployError(ModelCIError):
    """A deploy step or the smoke test failed."""


@dataclass
class DeployResult:
    target: str
    version: int | None
    deployed: bool
    smoke: str  # passed | failed | skipped
    rolled_back_to: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Target(Protocol):
    name: str

    def deploy(self, version: Version, image: str | None) -> list[str]: ...

    def undo(self) -> list[str]: ...


class NoTarget:
    name = "none"

    def deploy(self, version: Version, image: str | None) -> list[str]:
        return ["no deploy target configured (registry.deploy_target: none): nothing was deployed"]

    def undo(self) -> list[str]:
        return []


class RegistryOnly:
    name = "registry"

    def deploy(self, version: Version, image: str | None) -> list[str]:
        return [
            f"registry only: @champion is version {version.version}; servers following the "
            "alias pick it up, no image was deployed by this job"
        ]

    def undo(self) -> list[str]:
        return []


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise DeployError("kubectl is not on PATH (the kubernetes target needs it)")
    return found


class Kubernetes:
    name = "kubernetes"

    def __init__(self, manifests: Path, deployment: str, container: str, kubeconfig: Path):
        self.manifests = manifests
        self.deployment = deployment
        self.container = container
        self.kubeconfig = kubeconfig

    def _run(self, *args: str) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        done = subprocess.run(  # noqa: S603 - fixed argument list
            [_kubectl(), *args], capture_output=True, text=True, env=env, timeout=600, check=False
        )
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise DeployError(
                f"kubectl {args[0]} failed (exit {done.returncode})"
                + (f": {detail[-1][:300]}" if detail else "")
            )
        return done.stdout

    def deploy(self, version: Version, image: str | None) -> list[str]:
        if not self.manifests.is_dir():
            raise DeployError(f"{self.manifests}: kubernetes manifests not found")
        notes = []
        self._run("apply", "-k", str(self.manifests))
        notes.append(f"applied {self.manifests}")
        if image:
            self._run("set", "image", f"deployment/{self.deployment}", f"{self.container}={image}")
            notes.append(f"deployment/{self.deployment} image -> {image}")
        self._run("rollout", "status", f"deployment/{self.deployment}", "--timeout=300s")
        notes.append(f"deployment/{self.deployment} rolled out (model version {version.version})")
        return notes

    def undo(self) -> list[str]:
        self._run("rollout", "undo", f"deployment/{self.deployment}")
        self._run("rollout", "status", f"deployment/{self.deployment}", "--timeout=300s")
        return [f"kubectl rollout undo deployment/{self.deployment}"]


@contextmanager
def kubeconfig_file() -> Iterator[Path | None]:
    """The ``KUBE_CONFIG`` secret's content in a private temporary file (never printed)."""
    content = os.environ.get("KUBE_CONFIG", "")
    if not content.strip():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="modelci-kube-") as tmp:
        path = Path(tmp) / "config"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        yield path


def _http(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    if not url.startswith(("http://", "https://")):
        raise DeployError(f"smoke URL must be http(s): {url[:80]!r}")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        url,
        data=body,
        headers={"Content-Type": "application/json"} if body is not None else {},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read(1 << 20)
    except urllib.error.HTTPError as error:
        return int(error.code), error.read(4096)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        return 0, str(getattr(error, "reason", error)).encode()


def smoke_test(
    base_url: str,
    version: Version,
    example: list[dict[str, Any]],
    attempts: int = 10,
    delay: float = 2.0,
) -> list[str]:
    """Raise DeployError unless the endpoint is ready, serves this model and predicts.

    Readiness and the served model are retried (``attempts`` x ``delay``): a server that follows
    the alias by polling may still serve the previous champion for a poll interval.
    """
    base = base_url.rstrip("/")
    problem = "not tried"
    notes: list[str] = []
    for attempt in range(max(1, attempts)):
        if attempt:
            time.sleep(delay)
        status, _body = _http(f"{base}/ready")
        if status != 200:
            problem = f"{base}/ready did not answer 200 (last status {status})"
            continue
        status, body = _http(f"{base}/model")
        if status == 200 and version.sha256:
            if version.sha256 not in body.decode("utf-8", "replace"):
                problem = (
                    f"{base}/model does not report the deployed model sha256 "
                    f"{version.sha256[:12]} (an old or a different model is being served)"
                )
                continue
            notes = [f"{base}/ready: 200", f"{base}/model: serves sha256 {version.sha256[:12]}"]
        else:
            notes = [f"{base}/ready: 200"]
        break
    else:
        raise DeployError(f"smoke test: {problem}")
    payload = json.dumps({"dataframe_records": example}).encode()
    status, body = _http(f"{base}/invocations", payload)
    if status != 200:
        text = body.decode("utf-8", "replace")[:200]
        raise DeployError(f"smoke test: POST {base}/invocations answered {status}: {text}")
    notes.append(f"{base}/invocations: 200 on {len(example)} row(s)")
    return notes


def example_rows(params: ReleaseParams, test_path: Path, rows: int = 2) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        frame = pd.read_parquet(test_path)[params.data.features].head(rows)
    except (OSError, ValueError, KeyError) as error:
        raise DeployError(
            f"{test_path}: cannot read example rows for the smoke test ({error})"
        ) from None
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return records


def make_target(params: ReleaseParams, name: str, kubeconfig: Path | None) -> Target | str:
    """The target object, or a reason string when the configured target cannot run here."""
    if name == "none":
        return NoTarget()
    if name == "registry":
        return RegistryOnly()
    if name == "kubernetes":
        if kubeconfig is None:
            return (
                "kubernetes target selected but no KUBE_CONFIG secret is set: nothing was "
                "deployed to a cluster"
            )
        r = params.registry
        return Kubernetes(Path(r.k8s_manifests), r.k8s_deployment, r.k8s_container, kubeconfig)
    raise DeployError(f"unknown deploy target {name!r} (none | registry | kubernetes)")


def deploy(
    params: ReleaseParams,
    version: int | None = None,
    target_name: str | None = None,
    image: str | None = None,
    smoke_url: str | None = None,
    test_path: Path = Path("data/prepared/test.parquet"),
    smoke_attempts: int = 10,
    registry: Registry | None = None,
) -> DeployResult:
    from modelci.registry.rollback import rollback

    reg = registry or open_registry(params)
    champion = reg.alias(reg.champion_alias)
    chosen = reg.get(version) if version is not None else champion
    name = target_name or params.registry.deploy_target
    if chosen is None:
        raise DeployError(f"{reg.name!r} has no @{reg.champion_alias}: nothing to deploy")
    if champion is None or champion.version != chosen.version:
        raise DeployError(
            f"version {chosen.version} is not @{reg.champion_alias} (which is "
            f"{champion.version if champion else 'none'}); promote it first"
        )
    reg.model_bytes(chosen)  # sha256 verified before anything is deployed
    result = DeployResult(name, chosen.version, False, "skipped")
    with kubeconfig_file() as kubeconfig:
        target = make_target(params, name, kubeconfig)
        if isinstance(target, str):
            result.notes.append(target)
            return result
        result.notes += target.deploy(chosen, image)
        result.deployed = name != "none"
        if not smoke_url or name == "none":
            result.notes.append("no smoke URL given: the smoke test was skipped")
            return result
        try:
            result.notes += smoke_test(
                smoke_url, chosen, example_rows(params, test_path), attempts=smoke_attempts
            )
            result.smoke = "passed"
            return result
        except DeployError as error:
            failure = error
            result.smoke = "failed"
            result.notes.append(str(failure))
            undo_notes = _undo(target)
            result.notes += undo_notes
        done = rollback(
            params,
            reason=f"automatic: smoke test failed for version {chosen.version}: {failure}",
            actor="modelci deploy (automatic rollback)",
            registry=reg,
            allow_empty=True,
        )
        result.rolled_back_to = done.to_version.version if done.to_version else None
        result.notes.append(
            f"@{reg.champion_alias} rolled back to "
            + (f"version {result.rolled_back_to}" if result.rolled_back_to else "none")
        )
        raise DeployFailedError(result, failure)


def _undo(target: Target) -> list[str]:
    try:
        return target.undo()
    except DeployError as error:
        return [f"undoing the deployment failed too: {error}"]


class DeployFailedError(DeployError):
    """The smoke test failed; the deployment and ``@champion`` were rolled back."""

    def __init__(self, result: DeployResult, cause: DeployError) -> None:
        rolled = result.rolled_back_to
        super().__init__(
            f"version {result.version} failed its smoke test and was rolled back to "
            + (f"version {rolled}" if rolled else "no champion (there was no previous one)")
            + f": {cause}",
            details=result.notes,
        )
        self.result = result


def summary_markdown(result: DeployResult) -> str:
    head = {
        "passed": "Deployed and smoke-tested",
        "failed": "**Smoke test FAILED: rolled back**",
        "skipped": "Deployed (no smoke test)" if result.deployed else "Nothing deployed",
    }[result.smoke]
    lines = [f"## Deploy: {head}", "", f"- Target: `{result.target}`"]
    lines.append(f"- Model version: {result.version}")
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def write_outputs(pairs: dict[str, str], summary: str | None = None) -> None:
    """Append ``key=value`` to ``$GITHUB_OUTPUT`` and Markdown to ``$GITHUB_STEP_SUMMARY``."""
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            for key, value in pairs.items():
                handle.write(f"{key}={_one_line(value)}\n")
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step and summary:
        with open(step, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")


def _one_line(value: str) -> str:
    return " ".join(value.split())

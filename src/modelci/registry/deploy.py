"""``modelci release deploy``: ship the champion to a target, smoke-test it, roll back on failure.

The targets (``registry.deploy_target`` in params.yaml, or ``--target``) live in
:mod:`modelci.deploy.targets`, each behind the same interface: ``deploy`` stages the new version,
``verify`` smoke-tests it (and, for blue/green, moves the traffic), ``undo`` gives the traffic
back. docs/deploy.md describes each one and its settings.

The model's artifact is downloaded and verified against its registered sha256 before anything
is deployed. When the smoke test fails, the deployment is undone, ``@champion`` is rolled back
to ``@previous`` with the reason recorded, and the command fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelci.config import ReleaseParams
from modelci.deploy.errors import DeployError
from modelci.deploy.smoke import example_rows, smoke_test
from modelci.deploy.targets import Target, make_target
from modelci.deploy.targets.kubernetes import kubeconfig_file
from modelci.layout import DEFAULT_PATHS
from modelci.registry.core import Registry, open_registry

__all__ = ["DeployError", "DeployFailedError", "DeployResult", "deploy", "smoke_test"]


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


def deploy(
    params: ReleaseParams,
    version: int | None = None,
    target_name: str | None = None,
    image: str | None = None,
    smoke_url: str | None = None,
    test_path: Path = DEFAULT_PATHS.test,
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
        try:
            result.notes += target.deploy(chosen, image)
            result.deployed = name != "none"

            def check(url: str) -> list[str]:
                rows = example_rows(params, test_path)  # read only when a smoke test runs
                return smoke_test(url, chosen, rows, attempts=smoke_attempts)

            verified = target.verify(check, smoke_url or None)
            result.notes += verified.notes
            result.smoke = "passed" if verified.ran else "skipped"
            return result
        except DeployError as error:
            failure = error
            result.smoke = "failed" if result.deployed else "skipped"
            result.notes.append(str(failure))
            result.notes += _undo(target)
        if not result.deployed:
            raise failure
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

"""The deploy targets by name (``registry.deploy_target``, ``modelci release deploy --target``)."""

from __future__ import annotations

from pathlib import Path

from modelci.config import ReleaseParams
from modelci.deploy.errors import DeployError
from modelci.deploy.names import DESCRIPTIONS, IMAGE_TARGETS
from modelci.deploy.targets.base import NoTarget, RegistryOnly, Target, Verified

__all__ = ["DESCRIPTIONS", "IMAGE_TARGETS", "Target", "Verified", "make_target"]


def make_target(params: ReleaseParams, name: str, kubeconfig: Path | None) -> Target | str:
    """The target object, or a reason string when the configured target cannot run here."""
    r = params.registry
    if name == "none":
        return NoTarget()
    if name == "registry":
        return RegistryOnly()
    if name == "kubernetes":
        from modelci.deploy.targets.kubernetes import Kubernetes

        if kubeconfig is None:
            return (
                "kubernetes target selected but no KUBE_CONFIG secret is set: nothing was "
                "deployed to a cluster"
            )
        return Kubernetes(Path(r.k8s_manifests), r.k8s_deployment, r.k8s_container, kubeconfig)
    if name == "container":
        from modelci.deploy.targets.container import ContainerHost

        return ContainerHost(r.container)
    if name == "cloudrun":
        from modelci.deploy.targets.cloudrun import CloudRun

        return CloudRun(r.cloudrun)
    if name == "lambda":
        from modelci.deploy.targets.aws_lambda import AwsLambda

        return AwsLambda(r.aws_lambda)
    raise DeployError(f"unknown deploy target {name!r} ({' | '.join(DESCRIPTIONS)})")

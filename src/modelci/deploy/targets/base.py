"""The interface every deploy target implements, and the two that deploy nothing themselves.

A deploy is ``deploy`` (stage the new version), ``verify`` (smoke-test it and, for targets that
hold two versions side by side, move the traffic), then, only when either failed, ``undo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from modelci.deploy.smoke import SmokeCheck
from modelci.model_version import Version


@dataclass
class Verified:
    """What ``verify`` did: whether a smoke test ran, and its notes."""

    ran: bool
    notes: list[str] = field(default_factory=list)


class Target(Protocol):
    name: str

    def deploy(self, version: Version, image: str | None) -> list[str]:
        """Put ``version`` (as ``image``) in place; its notes. Raises DeployError."""
        ...

    def verify(self, check: SmokeCheck, smoke_url: str | None) -> Verified:
        """Smoke-test what ``deploy`` staged (``smoke_url``: the public endpoint, if known)."""
        ...

    def undo(self) -> list[str]:
        """Give the traffic back to what served before ``deploy``; its notes."""
        ...


def verify_url(check: SmokeCheck, url: str | None) -> Verified:
    """The smoke test of targets with one public endpoint: run it when the URL is known."""
    if not url:
        return Verified(False, ["no smoke URL given: the smoke test was skipped"])
    return Verified(True, check(url))


class NoTarget:
    name = "none"

    def deploy(self, version: Version, image: str | None) -> list[str]:
        return ["no deploy target configured (registry.deploy_target: none): nothing was deployed"]

    def verify(self, check: SmokeCheck, smoke_url: str | None) -> Verified:
        return Verified(False, ["nothing was deployed: no smoke test"])

    def undo(self) -> list[str]:
        return []


class RegistryOnly:
    name = "registry"

    def deploy(self, version: Version, image: str | None) -> list[str]:
        return [
            f"registry only: @champion is version {version.version}; servers following the "
            "alias pick it up, no image was deployed by this job"
        ]

    def verify(self, check: SmokeCheck, smoke_url: str | None) -> Verified:
        return verify_url(check, smoke_url)

    def undo(self) -> list[str]:
        return []

"""``kubernetes``: ``kubectl apply -k``, ``set image`` to the pushed digest, ``rollout status``;
undone with ``kubectl rollout undo``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelci.deploy.errors import DeployError
from modelci.deploy.run import run, tool
from modelci.deploy.smoke import SmokeCheck
from modelci.deploy.targets.base import Verified, verify_url
from modelci.model_version import Version


class Kubernetes:
    name = "kubernetes"

    def __init__(self, manifests: Path, deployment: str, container: str, kubeconfig: Path):
        self.manifests = manifests
        self.deployment = deployment
        self.container = container
        self.kubeconfig = kubeconfig

    def _run(self, *args: str) -> str:
        return run(
            [tool("kubectl", self.name), *args],
            f"kubectl {args[0]}",
            env={"KUBECONFIG": str(self.kubeconfig)},
        )

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

    def verify(self, check: SmokeCheck, smoke_url: str | None) -> Verified:
        return verify_url(check, smoke_url)

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

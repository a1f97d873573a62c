"""``cloudrun``: a Knative ``Service`` (the Cloud Run API) pinned to the image digest, applied
with ``gcloud run services replace``; undone by giving the traffic back to the previous revision.

Each deploy names its revision after the model version and the image digest, and routes all
traffic to it by name: Cloud Run never routes to a revision that did not become ready, so a
failed start leaves the previous revision serving. The same manifest applies to a Knative
cluster with ``kubectl apply -f`` (docs/deploy.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelci.config import CloudRunParams
from modelci.deploy.errors import DeployError
from modelci.deploy.run import run, tool
from modelci.deploy.smoke import SmokeCheck
from modelci.deploy.targets.base import Verified, verify_url
from modelci.fileio import write_text
from modelci.model_version import Version

DIGEST_LENGTH = len("sha256:") + 64


def image_digest(image: str | None, target: str) -> str:
    """``sha256:...`` of ``NAME@sha256:...``, or DeployError: serverless targets run digests."""
    digest = (image or "").partition("@")[2]
    hexpart = digest.removeprefix("sha256:")
    if len(digest) != DIGEST_LENGTH or not all(c in "0123456789abcdef" for c in hexpart):
        raise DeployError(
            f"the {target} target needs an image pinned by digest (NAME@sha256:<64 hex>), "
            f"got {str(image)[:120]!r}"
        )
    return digest


def revision_name(service: str, version: int, digest: str) -> str:
    return f"{service}-m{version}-{digest.removeprefix('sha256:')[:8]}"


def service_manifest(params: CloudRunParams, version: Version, image: str) -> dict[str, Any]:
    """The Service: one container on ``params.port`` probed on /ready and /health."""
    revision = revision_name(params.service, version.version, image_digest(image, "cloudrun"))
    labels = {
        "app.kubernetes.io/name": params.service,
        "modelci/model-version": str(version.version),
    }
    probe = {"httpGet": {"path": "/ready", "port": params.port}, "periodSeconds": 1}
    container = {
        "image": image,
        "ports": [{"name": "http1", "containerPort": params.port}],
        "resources": {"limits": {"cpu": params.cpu, "memory": params.memory}},
        "startupProbe": {**probe, "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/health", "port": params.port}},
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": params.service, "labels": labels},
        "spec": {
            "template": {
                "metadata": {
                    "name": revision,
                    "labels": labels,
                    "annotations": {"autoscaling.knative.dev/maxScale": str(params.max_instances)},
                },
                "spec": {"containerConcurrency": 80, "containers": [container]},
            },
            "traffic": [{"revisionName": revision, "percent": 100}],
        },
    }


class CloudRun:
    name = "cloudrun"

    def __init__(self, params: CloudRunParams) -> None:
        if not params.region:
            raise DeployError("registry.cloudrun.region is not set (the cloudrun target needs it)")
        self.params = params
        self.previous: str | None = None
        self.url: str | None = None

    def _gcloud(self, *args: str) -> str:
        where = ["--region", self.params.region, "--format", "json", "--quiet"]
        if self.params.project:
            where += ["--project", self.params.project]
        return run([tool("gcloud", self.name), "run", *args, *where], f"gcloud run {args[0]}")

    def _serving_revision(self) -> str | None:
        try:
            described = json.loads(self._gcloud("services", "describe", self.params.service))
        except (DeployError, json.JSONDecodeError):
            return None  # no such service yet: this is its first deploy
        traffic = described.get("status", {}).get("traffic", [])
        serving = [t for t in traffic if t.get("percent") and t.get("revisionName")]
        return max(serving, key=lambda t: t["percent"])["revisionName"] if serving else None

    def deploy(self, version: Version, image: str | None) -> list[str]:
        manifest = service_manifest(self.params, version, image or "")
        path = Path(self.params.manifest)
        write_text(path, json.dumps(manifest, indent=2) + "\n")  # JSON is YAML, for gcloud
        self.previous = self._serving_revision()
        try:
            applied = json.loads(self._gcloud("services", "replace", str(path)))
        except json.JSONDecodeError:
            applied = {}
        self.url = applied.get("status", {}).get("url") or None
        revision = manifest["spec"]["template"]["metadata"]["name"]
        before = f" (was {self.previous})" if self.previous else " (first revision)"
        return [f"cloudrun: {self.params.service} traffic -> revision {revision}{before}"]

    def verify(self, check: SmokeCheck, smoke_url: str | None) -> Verified:
        return verify_url(check, smoke_url or self.url)

    def undo(self) -> list[str]:
        if self.previous is None:
            return ["cloudrun: no previous revision to give the traffic back to"]
        self._gcloud(
            "services", "update-traffic", self.params.service, f"--to-revisions={self.previous}=100"
        )
        return [f"cloudrun: {self.params.service} traffic -> revision {self.previous} again"]

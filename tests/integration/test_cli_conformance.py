"""The deploy targets' ``kubectl`` and ``gcloud`` calls and the release's ``gh`` calls, replayed
with the real CLIs.

The unit tests (``tests/unit/test_deploy_targets.py``) and the release workflow under act
(``tests/workflows/stubs/release-bin/kubectl`` and ``gh``) drive these through recording stand-ins
that accept any argument. Here every command a target issues is run with the real CLI against an
endpoint on 127.0.0.1 that refuses connections: a flag or subcommand the CLI does not know, a
kustomization it cannot build, or (gcloud) a Service manifest that does not parse into Cloud Run's
API message fails before any connection is tried, so the test tells those apart from the refused
connection every valid command ends with. ``gh`` is Debian's (``make system-deps``), and the REST
path it asks for is checked against GitHub's OpenAPI description. Neither kubectl nor gcloud is
on PyPI, npm or in a Debian release new enough here (Debian's ``kubernetes-client`` is kubectl
1.20, whose kustomize predates the overlays' ``labels:``; ``gcloud`` comes only from Google's own
apt repository): those tests run where the CLI is installed and skip, naming it, elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelci.config import CloudRunParams
from modelci.deploy.targets import cloudrun, kubernetes
from modelci.registry import release
from modelci.registry.core import TAG_SHA256, Version
from tests.conftest import REPO_ROOT
from tests.workflows import openapi_check

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = Version("model", 7, "run", {TAG_SHA256: "c" * 64})
IMAGE = f"europe-docker.pkg.dev/p/r/serve@sha256:{'ab' * 32}"
REFUSED = "127.0.0.1:9"  # the discard port: nothing listens there
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://{REFUSED}"}}}}]
users: [{{name: u, user: {{token: not-a-token}}}}]
contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
current-context: c
"""


def recorded(
    monkeypatch: pytest.MonkeyPatch, module: Any, answers: dict[str, str]
) -> list[list[str]]:
    """Every argv ``module``'s ``run`` is given, answered by its first word after the tool."""
    calls: list[list[str]] = []

    def record(argv: Sequence[str], what: str, **_: Any) -> str:
        calls.append(list(argv))
        return answers.get(argv[1], "")

    monkeypatch.setattr(module, "run", record)
    monkeypatch.setattr(module, "tool", lambda name, _target: name)
    return calls


def replay(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=180, check=False, env={**os.environ, **env}
    )
    assert done.returncode != 0, f"{argv}: succeeded against a refused endpoint"
    return done.stderr


def kubectl_minor() -> int | None:
    if shutil.which("kubectl") is None:
        return None
    done = subprocess.run(
        ["kubectl", "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        return int(re.sub(r"\D", "", json.loads(done.stdout)["clientVersion"]["minor"]))
    except (ValueError, KeyError):
        return None


def test_the_kubernetes_targets_kubectl_calls_are_accepted_by_kubectl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    minor = kubectl_minor()
    if minor is None or minor < 24:
        pytest.skip(f"needs kubectl 1.24 or newer (kustomize v4.5+) on PATH, found {minor}")
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG, encoding="utf-8")
    calls = recorded(monkeypatch, kubernetes, {})
    target = kubernetes.Kubernetes(REPO_ROOT / "deploy" / "k8s", "modelci-serve", "serve", config)
    target.deploy(VERSION, IMAGE)
    target.undo()
    assert [c[1] for c in calls] == ["apply", "set", "rollout", "rollout", "rollout"]
    for argv in calls:
        stderr = replay(argv, {"KUBECONFIG": str(config)})
        assert "connection refused" in stderr, f"{argv}: {stderr[-400:]}"
        assert "unknown flag" not in stderr
        assert "unknown command" not in stderr


def test_the_cloudrun_targets_gcloud_calls_are_accepted_by_gcloud(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """gcloud parses the written manifest into Cloud Run's ``Service`` message before it sends
    anything; it then sends every call to ``REGION-127.0.0.1:9`` (a name that never resolves)."""
    if shutil.which("gcloud") is None:
        pytest.skip("gcloud is not installed (Google's apt repository only; not on PyPI/Debian)")
    token = tmp_path / "token"
    token.write_text("not-a-token", encoding="utf-8")
    env = {
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": f"http://{REFUSED}/",
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token),
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        "CLOUDSDK_CORE_VERBOSITY": "debug",
    }
    described = {"status": {"traffic": [{"revisionName": "titanic-m6-00000000", "percent": 100}]}}
    calls = recorded(monkeypatch, cloudrun, {"run": json.dumps(described)})
    manifest = tmp_path / "service.json"
    params = CloudRunParams(
        service="titanic", region="europe-west1", project="p", manifest=str(manifest)
    )
    target = cloudrun.CloudRun(params)
    target.deploy(VERSION, IMAGE)
    target.undo()
    assert [c[3] for c in calls] == ["describe", "replace", "update-traffic"]
    bogus = json.loads(manifest.read_text(encoding="utf-8"))
    bogus["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    broken = tmp_path / "bogus.json"
    broken.write_text(json.dumps(bogus), encoding="utf-8")
    control = [*calls[1][:4], str(broken), *calls[1][5:]]
    with ThreadPoolExecutor(max_workers=4) as pool:  # each valid call retries for about 35 s
        *stderrs, refused = pool.map(lambda argv: replay(argv, env), [*calls, control])
    assert "Failed to parse value(s) in protobuf [Service]" in refused  # the control fails
    for argv, stderr in zip(calls, stderrs, strict=True):
        assert "europe-west1-127.0.0.1" in stderr, f"{argv}: {stderr[-400:]}"  # it got to send
        assert "Failed to parse" not in stderr
        assert "unrecognized arguments" not in stderr


def test_the_releases_gh_calls_are_accepted_by_gh(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``publish_release`` with Debian's gh against a GitHub host on 127.0.0.1:9: ``release view``
    finds no release (as the stand-in answers), then ``create`` (and, when the release exists,
    ``upload``) get as far as the network with every flag accepted."""
    if shutil.which("gh") is None:
        pytest.skip("gh is not installed (Debian's gh: make system-deps)")
    for key, value in {
        "GH_CONFIG_DIR": str(tmp_path / "gh-config"),
        "GH_HOST": REFUSED,
        "GH_REPO": f"{REFUSED}/acme/model",
        "GH_ENTERPRISE_TOKEN": "not-a-token",
        "GH_PROMPT_DISABLED": "1",
        "GH_NO_UPDATE_NOTIFIER": "1",
    }.items():
        monkeypatch.setenv(key, value)
    notes, card = tmp_path / "notes.md", tmp_path / "card.md"
    notes.write_text("notes", encoding="utf-8")
    card.write_text("card", encoding="utf-8")
    with pytest.raises(release.ReleaseError, match="gh release create failed") as created:
        release.publish_release("model-v7", "model v7", notes, [card], "a" * 40)
    assert "connection refused" in str(created.value)
    path = str(created.value).split("/api/v3", 1)[1].split('"')[0]
    assert path == "/repos/acme/model/releases/tags/model-v7"
    if openapi_check.available():
        assert openapi_check.spec().operation("GET", path) is not None

    real_run = subprocess.run

    def release_exists(argv: list[str], **kwargs: Any) -> Any:
        if argv[1:3] == ["release", "view"]:
            return subprocess.CompletedProcess(argv, 0, "", "")
        return real_run(argv, **kwargs)

    monkeypatch.setattr(subprocess, "run", release_exists)
    with pytest.raises(release.ReleaseError, match="gh release upload failed") as uploaded:
        release.publish_release("model-v7", "model v7", notes, [card], "a" * 40)
    assert "connection refused" in str(uploaded.value)

"""The serverless targets against recording ``gcloud``/``aws`` stand-ins, their manifests checked
offline, and the configuration and argument errors of every target."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelci.cli import main
from modelci.config import CloudRunParams, ContainerTargetParams, LambdaParams
from modelci.deploy.engine import Engine
from modelci.deploy.errors import DeployError
from modelci.deploy.names import DESCRIPTIONS
from modelci.deploy.targets.aws_lambda import AwsLambda
from modelci.deploy.targets.cloudrun import CloudRun, service_manifest
from modelci.deploy.targets.container import ContainerHost
from modelci.model_version import Version
from modelci.tags import TAG_SHA256
from tests.unit.standins import StandIns, install

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"europe-docker.pkg.dev/p/r/serve@{DIGEST}"
VERSION = Version("model", 7, "run", {TAG_SHA256: "c" * 64})
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIns:
    return install(tmp_path, monkeypatch)


def passing(url: str) -> list[str]:
    return [f"smoke {url}"]


def failing(url: str) -> list[str]:
    raise DeployError(f"smoke test: {url}/ready did not answer 200")


# -- Cloud Run / Knative ------------------------------------------------------------------------


def check_knative_service(manifest: dict[str, Any]) -> None:
    """Knative Serving v1 ``Service`` rules that Cloud Run enforces too."""
    assert manifest["apiVersion"] == "serving.knative.dev/v1"
    assert manifest["kind"] == "Service"
    name = manifest["metadata"]["name"]
    assert DNS_LABEL.match(name)
    template = manifest["spec"]["template"]
    revision = template["metadata"]["name"]
    assert revision.startswith(f"{name}-"), "a revision name is prefixed by the service's"
    assert DNS_LABEL.match(revision)
    assert len(revision) <= 63
    (container,) = template["spec"]["containers"]
    assert "@sha256:" in container["image"]
    (port,) = container["ports"]
    assert port["name"] in ("http1", "h2c")
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["containerPort"]
    traffic = manifest["spec"]["traffic"]
    assert sum(t["percent"] for t in traffic) == 100
    assert {t["revisionName"] for t in traffic} == {revision}


def test_cloudrun_manifest_is_a_valid_knative_service_pinned_to_the_digest() -> None:
    params = CloudRunParams(service="titanic", region="europe-west1", max_instances=3)
    manifest = service_manifest(params, VERSION, IMAGE)
    check_knative_service(manifest)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert manifest["spec"]["template"]["metadata"]["name"] == "titanic-m7-abababab"
    annotations = manifest["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/maxScale"] == "3"


def test_cloudrun_deploy_and_undo_shift_traffic_between_revisions(
    standins: StandIns, tmp_path: Path
) -> None:
    manifest_path = tmp_path / "service.yaml"
    params = CloudRunParams(region="europe-west1", project="proj", manifest=str(manifest_path))
    standins.answer(
        "gcloud run services describe",
        {"status": {"traffic": [{"revisionName": "modelci-serve-m6-01234567", "percent": 100}]}},
    )
    standins.answer("gcloud run services replace", {"status": {"url": "https://run.example"}})
    target = CloudRun(params)
    notes = target.deploy(VERSION, IMAGE)
    assert "was modelci-serve-m6-01234567" in notes[0]
    check_knative_service(yaml.safe_load(manifest_path.read_text(encoding="utf-8")))
    verified = target.verify(passing, None)
    assert verified.ran
    assert verified.notes == ["smoke https://run.example"]  # the service's URL when none given
    target.undo()
    calls = standins.calls("gcloud")
    assert calls[1][:4] == ["run", "services", "replace", str(manifest_path)]
    assert calls[-1][:5] == [
        "run", "services", "update-traffic", "modelci-serve",
        "--to-revisions=modelci-serve-m6-01234567=100",
    ]  # fmt: skip
    assert all(c[c.index("--region") :][:2] == ["--region", "europe-west1"] for c in calls)
    assert all("--project" in c for c in calls)


def test_cloudrun_first_deploy_has_nothing_to_undo(standins: StandIns, tmp_path: Path) -> None:
    standins.answer("gcloud run services describe", exit=1)
    params = CloudRunParams(region="r", manifest=str(tmp_path / "m.yaml"))
    target = CloudRun(params)
    assert "first revision" in target.deploy(VERSION, IMAGE)[0]
    assert "no previous revision" in target.undo()[0]
    assert not any("update-traffic" in c for c in standins.calls("gcloud"))


def test_cloudrun_errors(standins: StandIns, tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"registry\.cloudrun\.region is not set"):
        CloudRun(CloudRunParams())
    target = CloudRun(CloudRunParams(region="r", manifest=str(tmp_path / "m.yaml")))
    with pytest.raises(DeployError, match="needs an image pinned by digest"):
        target.deploy(VERSION, "ghcr.io/o/r:latest")
    assert standins.calls("gcloud") == []
    standins.answer("gcloud run services replace", exit=1)
    with pytest.raises(DeployError, match=r"gcloud run services failed \(exit 1\)"):
        target.deploy(VERSION, IMAGE)


# -- AWS Lambda ---------------------------------------------------------------------------------


def test_lambda_deploy_publishes_moves_the_alias_and_undo_moves_it_back(
    standins: StandIns,
) -> None:
    standins.answer("aws lambda get-alias", {"FunctionVersion": "4", "Name": "live"})
    standins.answer("aws lambda update-function-code", {"Version": "5"})
    target = AwsLambda(LambdaParams(function="titanic", region="eu-west-1"))
    notes = target.deploy(VERSION, IMAGE)
    assert "version 5 (was 4)" in notes[0]
    assert not target.verify(passing, None).ran
    assert target.verify(passing, "https://x.lambda-url.eu-west-1.on.aws").ran
    target.undo()
    calls = [c[: c.index("--output")] for c in standins.calls("aws")]
    assert calls == [
        ["lambda", "get-alias", "--function-name", "titanic", "--name", "live"],
        ["lambda", "update-function-code", "--function-name", "titanic", "--image-uri", IMAGE,
         "--publish"],
        ["lambda", "wait", "published-version-active", "--function-name", "titanic",
         "--qualifier", "5"],
        ["lambda", "update-alias", "--function-name", "titanic", "--name", "live",
         "--function-version", "5"],
        ["lambda", "update-alias", "--function-name", "titanic", "--name", "live",
         "--function-version", "4"],
    ]  # fmt: skip
    assert all(c[-2:] == ["--region", "eu-west-1"] for c in standins.calls("aws"))


def test_lambda_first_deploy_creates_the_alias_and_undo_deletes_it(
    standins: StandIns,
) -> None:
    standins.answer("aws lambda get-alias", exit=1)
    standins.answer("aws lambda update-function-code", {"Version": "1"})
    target = AwsLambda(LambdaParams(function="f"))
    assert "(new alias)" in target.deploy(VERSION, IMAGE)[0]
    assert "deleted alias" in target.undo()[0]
    verbs = [c[1] for c in standins.calls("aws")]
    assert verbs == ["get-alias", "update-function-code", "wait", "create-alias", "delete-alias"]


def test_lambda_errors(standins: StandIns) -> None:
    with pytest.raises(DeployError, match=r"registry\.aws_lambda\.function is not set"):
        AwsLambda(LambdaParams())
    target = AwsLambda(LambdaParams(function="f"))
    with pytest.raises(DeployError, match="needs an image pinned by digest"):
        target.deploy(VERSION, None)
    standins.answer("aws lambda update-function-code", "not json")
    with pytest.raises(DeployError, match="printed no JSON"):
        target.deploy(VERSION, IMAGE)
    standins.answer("aws lambda update-function-code", {"FunctionName": "f"})
    with pytest.raises(DeployError, match="returned no Version"):
        target.deploy(VERSION, IMAGE)


# -- container: configuration and the remote engine ---------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ports": (8081, 8081)}, "two different ports"),
        ({"switch": "upstream"}, "needs upstream_file"),
        ({"upstream_template": "server x;"}, "must contain {port}"),
        ({"ports": (0, 8082)}, "greater than or equal to 1"),
    ],
)
def test_container_settings_are_checked(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        ContainerTargetParams(**settings)


def test_engine_over_ssh_quotes_one_remote_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("modelci.deploy.engine.tool", lambda name, target: f"/usr/bin/{name}")
    engine = Engine("docker", "ssh -p 2222 deploy@vm1")
    argv = engine._argv(["docker", "run", "--label", "a b", "img;rm -rf /"])
    assert argv == ["/usr/bin/ssh", "-p", "2222", "deploy@vm1",
                    "docker run --label 'a b' 'img;rm -rf /'"]  # fmt: skip
    assert Engine("podman")._argv(["podman", "ps"]) == ["/usr/bin/podman", "ps"]


def test_deploy_help_describes_every_target(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "2000")  # no line breaks inside the descriptions
    with pytest.raises(SystemExit):
        main(["release", "deploy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, description in DESCRIPTIONS.items():
        assert f"{name}: {description}" in text
    with pytest.raises(SystemExit) as bad:
        main(["release", "deploy", "--target", "heroku"])
    assert bad.value.code == 2


class FakeEngine:
    """An in-memory container host: containers by name with a running flag, written files."""

    def __init__(self, fail_reload: bool = False) -> None:
        self.containers: dict[str, bool] = {}
        self.files: dict[str, str] = {}
        self.fail_reload = fail_reload

    def __call__(self, *args: str, timeout: float = 600) -> str:
        verb = args[0]
        if verb == "run":
            self.containers[args[args.index("--name") + 1]] = True
        elif verb in ("stop", "start"):
            self.containers[args[1]] = verb == "start"
        elif verb == "rm":
            self.containers.pop(args[-1], None)
        return ""

    def state(self, container: str) -> str:
        if container not in self.containers:
            return "absent"
        return "running" if self.containers[container] else "stopped"

    def shell(self, command: str) -> str:
        if self.fail_reload:
            raise DeployError("nginx (reload command) failed (exit 1)")
        return ""

    def write_file(self, path: str, content: str) -> None:
        self.files[path] = content


def test_container_undo_after_a_failed_reload_points_the_proxy_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ContainerHost, "_wait_ready", lambda self, slot: None)
    params = ContainerTargetParams(
        switch="upstream", upstream_file="/etc/nginx/up.inc", reload_command="nginx -s reload"
    )
    engine = FakeEngine()
    host = ContainerHost(params, engine)  # type: ignore[arg-type]
    host.deploy(VERSION, IMAGE)
    host.verify(passing, None)
    assert engine.files["/etc/nginx/up.inc"] == "server 127.0.0.1:8081;\n"
    engine.fail_reload = True
    host.deploy(VERSION, IMAGE)
    with pytest.raises(DeployError, match="reload command"):
        host.verify(passing, None)
    engine.fail_reload = False
    host.undo()
    assert engine.files["/etc/nginx/up.inc"] == "server 127.0.0.1:8081;\n"
    assert engine.containers == {"modelci-serve-blue": True}


def test_container_failed_smoke_test_never_touches_the_old_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ContainerHost, "_wait_ready", lambda self, slot: None)
    engine = FakeEngine()
    host = ContainerHost(ContainerTargetParams(), engine)  # type: ignore[arg-type]
    host.deploy(VERSION, IMAGE)
    host.verify(passing, None)
    notes = host.deploy(VERSION, IMAGE)
    assert "modelci-serve-green" in notes[0]
    assert "beside modelci-serve-blue" in notes[0]
    with pytest.raises(DeployError, match="did not answer 200"):
        host.verify(failing, None)
    assert engine.containers == {"modelci-serve-blue": True, "modelci-serve-green": True}
    host.undo()
    assert engine.containers == {"modelci-serve-blue": True}

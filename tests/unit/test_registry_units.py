"""Pure parts of the registry and release code, and their error paths (no server needed)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from modelci.cli import main
from modelci.config import ConfigError, parse_params
from modelci.deploy.errors import DeployError
from modelci.deploy.smoke import request
from modelci.deploy.targets.kubernetes import kubeconfig_file
from modelci.model_version import Version
from modelci.registry.register import RegistryError, find_sha256, read_report
from modelci.registry.release import ReleaseError, build_image, find_reviewed_report

pytestmark = pytest.mark.unit

SHA = "a" * 64


@pytest.mark.parametrize(
    "report",
    [
        {"model_sha256": SHA},
        {"model": {"sha256": SHA, "path": "models/model.skops"}},
        {"head": {"model": {"sha256": SHA}}},
        [{"x": 1}, {"artifact": {"sha256": SHA}}],
    ],
)
def test_find_sha256_in_report_shapes(report: object) -> None:
    assert find_sha256(report) == SHA


def test_find_sha256_ignores_non_digests() -> None:
    assert find_sha256({"model": {"sha256": None}, "sha256": "short"}) is None


def test_read_report_errors_and_pr_number(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="PR report not found"):
        read_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RegistryError, match="cannot read PR report"):
        read_report(bad)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"model": {"sha256": SHA}}))
    (tmp_path / "metadata.json").write_text(json.dumps({"pr_number": 12, "head_sha": "b" * 40}))
    assert read_report(report) == (SHA, "PR #12")


def test_version_order_is_commit_time_then_number() -> None:
    old = Version("m", 5, "r", {"modelci.commit_time": "100"})
    new = Version("m", 2, "r", {"modelci.commit_time": "200"})
    unknown = Version("m", 9, "r", {"modelci.commit_time": "garbage"})
    assert sorted([new, old, unknown], key=lambda v: v.order) == [unknown, old, new]


def test_registry_params_validation() -> None:
    import yaml

    from tests.conftest import REPO_ROOT

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["registry"] = {"champion_alias": "x", "previous_alias": "x"}
    with pytest.raises(ConfigError, match="must differ"):
        parse_params(raw)
    raw["registry"] = {"deploy_target": "heroku"}
    with pytest.raises(ConfigError, match=r"registry\.deploy_target"):
        parse_params(raw)


def test_build_image_refuses_bad_references(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="invalid image reference"):
        build_image("ghcr.io/x/y;rm", "v1", tmp_path, tmp_path / "Dockerfile", {})
    with pytest.raises(ReleaseError, match="Dockerfile not found"):
        build_image("ghcr.io/x/y", "v1", tmp_path, tmp_path / "Dockerfile", {})


def test_reviewed_report_refuses_bad_inputs() -> None:
    with pytest.raises(ReleaseError, match="invalid repository"):
        find_reviewed_report("http://127.0.0.1:9", "../etc", "a" * 40, "", "r", "pr.yml")
    with pytest.raises(ReleaseError, match="invalid repository"):
        find_reviewed_report("http://127.0.0.1:9", "o/r", "HEAD", "", "r", "pr.yml")


def test_kubeconfig_is_private_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBE_CONFIG", raising=False)
    with kubeconfig_file() as path:
        assert path is None
    monkeypatch.setenv("KUBE_CONFIG", "apiVersion: v1\n")
    with kubeconfig_file() as path:
        assert path is not None
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert path.read_text() == "apiVersion: v1\n"
    assert not path.exists()


def test_smoke_url_must_be_http() -> None:
    with pytest.raises(DeployError, match="must be http"):
        request("file:///etc/passwd")


def test_cli_argument_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["registry", "promote", "--version", "0"])
    assert "versions start at 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["registry", "register", "--expect-sha256", "xyz"])
    assert "64-character hex sha256" in capsys.readouterr().err


def test_release_image_skips_targets_without_an_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import REPO_ROOT

    monkeypatch.chdir(tmp_path)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    params = str(REPO_ROOT / "params.yaml")
    args = ["release", "image", "--params", params, "--image", "ghcr.io/o/r", "--tag", "model-v1"]
    assert main([*args, "--target", "registry"]) == 0
    assert "needs no image" in capsys.readouterr().out
    assert main([*args, "--target", "kubernetes"]) == 0
    assert "Dockerfile not found: no image was built" in capsys.readouterr().out
    assert "no image was built" in summary.read_text()
    with pytest.raises(SystemExit):
        main([*args, "--always", "--build-arg", "NO_EQUALS_SIGN"])
    assert "--build-arg: expected KEY=VALUE, got 'NO_EQUALS_SIGN'" in capsys.readouterr().err


def test_release_image_refuses_the_onnx_variant_for_a_model_without_a_verified_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ONNX export next to the model: the default image would refuse to start, so the
    release stops before building it and names the variant to choose."""
    from modelci.registry import release
    from tests.conftest import REPO_ROOT

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    shutil.copy(REPO_ROOT / "Dockerfile", tmp_path / "Dockerfile")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.skops").write_bytes(b"a model without an export")
    built: list[dict[str, str]] = []

    def fake_build(*args: Any) -> str:
        built.append(args[-1])
        return "ghcr.io/o/r:model-v1@sha256:" + "0" * 64

    monkeypatch.setattr(release, "build_image", fake_build)
    args = ["release", "image", "--params", str(REPO_ROOT / "params.yaml"),
            "--image", "ghcr.io/o/r", "--tag", "model-v1", "--target", "kubernetes"]  # fmt: skip
    assert main(args) != 0
    error = capsys.readouterr().err
    assert "has no verified ONNX export" in error
    assert "--build-arg SERVE_VARIANT=sklearn" in error
    assert not built
    assert main([*args, "--build-arg", "SERVE_VARIANT=sklearn"]) == 0
    assert built[0]["SERVE_VARIANT"] == "sklearn"
    assert "ONNX_SHA256" not in built[0]
    dockerfile = tmp_path / "Dockerfile"  # the variant chosen in the repository's own Dockerfile
    text = dockerfile.read_text(encoding="utf-8")
    dockerfile.write_text(text.replace('ARG SERVE_VARIANT="onnx"', 'ARG SERVE_VARIANT="sklearn"'))
    assert main(args) == 0
    assert len(built) == 2


def test_api_token_is_not_sent_to_a_redirect_host() -> None:
    """An artifact download redirects to storage elsewhere: the token stays with the API."""
    from modelci.github_api import GitHub
    from tests.http_support import Answer, Loopback, redirect

    routes = {
        "/start": redirect(lambda s: s.url("/storage", host="localhost")),
        "/storage": Answer(),
    }
    with Loopback(routes) as server:
        github = GitHub(server.url(""), "o/r", "secret-token")
        assert github.download(server.url("/start"), 100) == b"ok"
    assert [(s.path, s.authorization) for s in server.seen] == [
        ("/start", "Bearer secret-token"),
        ("/storage", None),
    ]

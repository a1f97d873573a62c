"""The ``lambda`` deploy target with the real AWS CLI (PyPI ``awscli``) against moto's Lambda on
127.0.0.1: the conformance run of the recording ``aws`` stand-in in ``tests/unit/standins.py``.

The unit tests drive the target through the stand-in (fast, every branch, failures on demand);
this runs the same deploy, redeploy and rollback with the real CLI, so an argument the CLI does
not accept, an answer shaped otherwise than the stand-in's, or a waiter that never ends fails
here. moto keeps the function, its versions and its alias; the image is never pulled and no
function runs (moto does not need Docker for these calls).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelci.config import LambdaParams
from modelci.deploy.targets.aws_lambda import AwsLambda
from modelci.registry.core import TAG_SHA256, Version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REGION = "eu-west-1"
REPOSITORY = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/titanic"
VERSION = Version("model", 7, "run", {TAG_SHA256: "c" * 64})
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "modelci-test",
    "AWS_SECRET_ACCESS_KEY": "modelci-test",
    "AWS_DEFAULT_REGION": REGION,
}


def image(byte: str) -> str:
    return f"{REPOSITORY}@sha256:{byte * 64}"


def real_aws() -> str | None:
    """The locked environment's AWS CLI (next to this Python), never a stand-in on PATH."""
    found = Path(sys.executable).parent / "aws"
    return str(found) if found.is_file() else None


@pytest.fixture
def moto_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto on 127.0.0.1 with one image function, ``titanic``; returns a boto3 Lambda client.
    The real ``aws`` is first on PATH and sends everything to moto (``AWS_ENDPOINT_URL``)."""
    aws = real_aws()
    if aws is None:
        pytest.skip("the AWS CLI is not installed (awscli is in the locked test group)")
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        bin_dir = Path(aws).parent
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        assert shutil.which("aws") == aws
        iam = boto3.client("iam", endpoint_url=endpoint)
        role = iam.create_role(RoleName="serve", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        client = boto3.client("lambda", endpoint_url=endpoint)
        client.create_function(
            FunctionName="titanic", Role=role, PackageType="Image", Code={"ImageUri": image("a")}
        )
        yield client
    finally:
        server.stop()


def test_deploy_redeploy_and_rollback_with_the_real_aws_cli(moto_lambda: Any) -> None:
    params = LambdaParams(function="titanic", region=REGION)
    first = AwsLambda(params)
    assert "version 1 (new alias)" in first.deploy(VERSION, image("b"))[0]
    alias = moto_lambda.get_alias(FunctionName="titanic", Name="live")
    assert alias["FunctionVersion"] == "1"

    second = AwsLambda(params)
    assert "version 2 (was 1)" in second.deploy(VERSION, image("c"))[0]
    assert moto_lambda.get_alias(FunctionName="titanic", Name="live")["FunctionVersion"] == "2"
    code = moto_lambda.get_function(FunctionName="titanic", Qualifier="2")["Code"]
    assert code["ImageUri"] == image("c")

    assert second.undo() == ["lambda: titanic:live -> version 1 again"]
    assert moto_lambda.get_alias(FunctionName="titanic", Name="live")["FunctionVersion"] == "1"

"""What the image runs, run without Docker: the ENTRYPOINT configured only by the image's ENV
(host and port moved to 127.0.0.1 and a free port), and its HEALTHCHECK command."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, tool_env
from tests.process_support import ServerProcess, free_port, http_get
from tests.unit.test_serving_deploy import dockerfile_stages, healthcheck_command

pytestmark = pytest.mark.integration


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_stages()[-1]:
        if instruction == "ENV":
            for item in shlex.split(arguments):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_entrypoint_and_healthcheck(pipeline_repo: Path) -> None:
    env = image_env()
    assert env["MODELCI_HOST"] == "0.0.0.0"  # noqa: S104 - inside the container
    port = free_port()
    entrypoint = json.loads(next(a for i, a in dockerfile_stages()[-1] if i == "ENTRYPOINT"))
    assert entrypoint == ["modelci", "serve"]
    config = {
        key: value
        for key, value in env.items()
        # Values from build arguments ($MODEL_SHA256) are the image builder's to fill in.
        if key.startswith(("MODELCI_", "PYTHON")) and key != "MODELCI_PARAMS" and "$" not in value
    }
    assert env["PORT"] == "8080"
    assert "MODELCI_PORT" not in env, "the image must honour $PORT (Cloud Run sets it)"
    config.update(
        MODELCI_HOST="127.0.0.1",
        PORT=str(port),
        MODELCI_PARAMS=str(pipeline_repo / "params.yaml"),
        MODELCI_MODEL_URI=str(pipeline_repo / "models/model.skops"),
    )
    command = [str(VENV_BIN / entrypoint[0]), *entrypoint[1:]]
    with ServerProcess(command, port, cwd=pipeline_repo, env=tool_env(**config)) as server:
        server.wait_ready()
        assert http_get(port, "/health")[0] == 200
        check = healthcheck_command()
        check[0] = str(VENV_BIN / "python")
        healthy = subprocess.run(
            check, env=tool_env(PORT=str(port)), capture_output=True, timeout=30
        )
        assert healthy.returncode == 0, healthy.stderr
        assert server.stop() == 0
    unhealthy = subprocess.run(check, env=tool_env(PORT=str(port)), capture_output=True, timeout=30)
    assert unhealthy.returncode != 0

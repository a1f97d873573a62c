"""Canary analysis against a real Prometheus scraping real ``modelci serve`` processes.

One Prometheus (127.0.0.1, 1 s scrapes, this repository's rules loaded) scrapes three servers of
the pipeline's model: the champion, a healthy challenger, and a faulty challenger started through
``tests/integration/faulty_serve.py`` (errors, slow responses, shifted predictions). While a
client sends the same rows to all three, two ``modelci monitor canary`` runs decide at once: the
faulty challenger is rolled back with the deciding numbers recorded, the healthy one is promoted.
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, VENV_BIN, tool_env
from tests.integration.prometheus_support import prometheus_binary, start_prometheus
from tests.process_support import ServerProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAULTY = Path(__file__).with_name("faulty_serve.py")
TRACKS = ("champion", "canary", "faulty")
BAKE_SECONDS = 8


@dataclass
class Traffic:
    """Sequential keep-alive requests to one server, counting its answers by status."""

    port: int
    bodies: list[bytes]
    statuses: dict[int, int] = field(default_factory=dict)

    def run(self, stop: threading.Event) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        index = 0
        while not stop.is_set():
            body = self.bodies[index % len(self.bodies)]
            index += 1
            try:
                connection.request(
                    "POST", "/predict", body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            stop.wait(0.004)  # about 200 requests/s: enough for a verdict, light on the CPU
        connection.close()

    @property
    def error_ratio(self) -> float:
        total = sum(self.statuses.values())
        return sum(n for status, n in self.statuses.items() if status >= 500) / total


def _rows(repo: Path, count: int) -> list[bytes]:
    import pandas as pd

    params = yaml.safe_load((repo / "params.yaml").read_text("utf-8"))
    test = pd.read_parquet(repo / "data/prepared/test.parquet")
    features = [name for name in params["data"]["columns"] if name != params["data"]["target"]]
    records = json.loads(test[features].head(count).to_json(orient="records"))
    return [json.dumps(record).encode() for record in records]


@dataclass
class Setup:
    prometheus: ServerProcess
    servers: dict[str, ServerProcess]
    traffic: dict[str, Traffic]
    params: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus.port}"


@pytest.fixture(scope="module")
def canary_setup(pipeline_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if prometheus_binary() is None:
        pytest.skip("prometheus not installed (Debian package prometheus; make system-deps)")
    root = tmp_path_factory.mktemp("canary")
    ports = {track: free_port() for track in TRACKS}
    servers: dict[str, ServerProcess] = {}
    stop = threading.Event()
    threads: list[threading.Thread] = []
    prometheus: ServerProcess | None = None
    try:
        for track in TRACKS:  # all three load at once
            launcher = [sys.executable, str(FAULTY)] if track == "faulty" else [
                str(VENV_BIN / "modelci"), "serve"
            ]  # fmt: skip
            servers[track] = ServerProcess(
                [*launcher, "--model", "models/model.skops", "--port", str(ports[track])],
                ports[track],
                cwd=pipeline_repo,
                env=tool_env(),
            )
        for server in servers.values():
            server.wait_ready()
        prometheus = start_prometheus(
            root / "prometheus",
            {f"modelci-{track}": (ports[track], {"track": track}) for track in TRACKS},
            [REPO_ROOT / "deploy/monitoring/rules.yml"],
        )
        bodies = _rows(pipeline_repo, 200)
        traffic = {track: Traffic(ports[track], bodies) for track in TRACKS}
        for item in traffic.values():
            threads.append(threading.Thread(target=item.run, args=(stop,), daemon=True))
            threads[-1].start()
        raw = yaml.safe_load((pipeline_repo / "params.yaml").read_text("utf-8"))
        raw["canary"] = {
            **raw.get("canary", {}),
            "bake_seconds": BAKE_SECONDS,
            "interval_seconds": 3,
            "min_requests": 30,
            "p99_ratio_floor_seconds": 0.1,
        }
        params = root / "params.yaml"
        params.write_text(yaml.safe_dump(raw), encoding="utf-8")
        time.sleep(2.5)  # the counters' first scrapes precede the bake window
        yield Setup(prometheus, servers, traffic, params)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        for process in [*servers.values(), *([prometheus] if prometheus else [])]:
            process.signal(signal.SIGTERM)  # all stop at once; cleanup() waits for each
        for process in [*servers.values(), *([prometheus] if prometheus else [])]:
            process.cleanup()


def _canary(setup: Setup, challenger: str, out: Path) -> Any:
    import subprocess

    outputs = out / "github_output"
    args = [
        str(VENV_BIN / "modelci"), "canary", "--params", str(setup.params),
        "--prometheus", setup.url, "--challenger", f'{{track="{challenger}"}}',
        "--out", str(out),
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        args,
        env=tool_env(GITHUB_OUTPUT=str(outputs), GITHUB_STEP_SUMMARY=str(out / "summary.md")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_faulty_challenger_rolls_back_and_healthy_one_is_promoted(
    canary_setup: Setup, tmp_path: Path
) -> None:
    faulty = _canary(canary_setup, "faulty", tmp_path / "faulty")
    healthy = _canary(canary_setup, "canary", tmp_path / "healthy")
    faulty_out, _ = faulty.communicate(timeout=BAKE_SECONDS + 60)
    healthy_out, _ = healthy.communicate(timeout=BAKE_SECONDS + 60)

    assert faulty.returncode == 1, faulty_out
    record = json.loads((tmp_path / "faulty/canary.json").read_text("utf-8"))
    assert record["decision"] == "rollback"
    assert record["conclusive"] is True
    failed = {check["name"] for check in record["checks"] if not check["passed"]}
    assert {"error_ratio", "p99_latency_seconds", "prediction_shift"} <= failed
    # The recorded numbers are what the servers did, as the client saw it.
    seen = canary_setup.traffic
    assert record["challenger"]["error_ratio"] == pytest.approx(
        seen["faulty"].error_ratio, abs=0.04
    )
    assert record["champion"]["error_ratio"] == seen["champion"].error_ratio == 0
    assert record["challenger"]["p99_seconds"] > record["champion"]["p99_seconds"]
    assert "decision=rollback" in (tmp_path / "faulty/github_output").read_text("utf-8")
    assert "Roll back" in (tmp_path / "faulty/summary.md").read_text("utf-8")

    assert healthy.returncode == 0, healthy_out
    record = json.loads((tmp_path / "healthy/canary.json").read_text("utf-8"))
    assert record["decision"] == "promote", record
    assert all(check["passed"] for check in record["checks"])
    assert record["window_seconds"] >= BAKE_SECONDS
    assert "decision=promote" in (tmp_path / "healthy/github_output").read_text("utf-8")


def test_prometheus_evaluates_the_recording_rules_on_real_series(canary_setup: Setup) -> None:
    query = urllib.parse.urlencode({"query": "modelci:http_requests:rate5m"})
    deadline = time.monotonic() + 30
    jobs: set[str] = set()
    while time.monotonic() < deadline and len(jobs) < len(TRACKS):
        address = f"{canary_setup.url}/api/v1/query?{query}"
        with urllib.request.urlopen(address) as answer:  # noqa: S310 - http://127.0.0.1
            result = json.loads(answer.read())["data"]["result"]
        jobs = {item["metric"]["job"] for item in result if float(item["value"][1]) > 0}
        time.sleep(1)
    assert jobs == {f"modelci-{track}" for track in TRACKS}

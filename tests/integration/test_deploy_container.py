"""The ``container`` target with real podman on 127.0.0.1: blue/green deploys switching a reverse
proxy's upstream file, a rollback (``undo``), and a failing deploy during which the old container
never stops serving."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelci.config import ContainerTargetParams
from modelci.deploy.errors import DeployError
from modelci.deploy.smoke import smoke_test
from modelci.deploy.targets.container import ContainerHost
from modelci.model_version import Version
from modelci.tags import TAG_SHA256
from tests.container_support import podman, podman_env
from tests.integration.conftest import ServingImage
from tests.integration.test_serving_image import _rows
from tests.process_support import free_port, http_get

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Watch:
    """Polls one port's /ready in a thread; records every answer that was not 200, with the
    upstream file's content at that moment (where the proxy sent traffic)."""

    def __init__(self, port: int, upstream: Path) -> None:
        self.port = port
        self.upstream = upstream
        self.failures: list[tuple[str, str]] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                status = http_get(self.port, "/ready", timeout=2.0)[0]
            except OSError as error:
                self.failures.append((repr(error), self.upstream.read_text()))
                continue
            self.polls += 1
            if status != 200:
                self.failures.append((str(status), self.upstream.read_text()))

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ContainerHost]:
    monkeypatch.setenv("CONTAINERS_CONF", podman_env()["CONTAINERS_CONF"])
    params = ContainerTargetParams(
        engine="podman",
        name=f"modelci-test-{free_port()}",
        ports=(free_port(), free_port()),
        network="host",
        switch="upstream",
        upstream_file=str(tmp_path / "upstream.conf"),
        reload_command=f"touch {tmp_path / 'reloaded'}",
        start_seconds=60,
    )
    target = ContainerHost(params)
    try:
        yield target
    finally:
        for slot in ("blue", "green"):
            podman("rm", "--force", "--time", "0", target.container(slot), check=False)


def _state(target: ContainerHost) -> dict[str, str]:
    return {slot: target.engine.state(target.container(slot)) for slot in ("blue", "green")}


def test_blue_green_deploy_rollback_and_a_failing_deploy(
    host: ContainerHost, serving_image: ServingImage, tmp_path: Path
) -> None:
    rows = _rows(serving_image, 2)
    good = [Version("model", n, "run", {TAG_SHA256: serving_image.sha256}) for n in (1, 2)]
    upstream = Path(host.params.upstream_file)
    blue, green = host.params.ports

    def check(version: Version) -> Any:
        return lambda url: smoke_test(url, version, rows, attempts=1)

    def deploy(version: Version) -> list[str]:
        notes = host.deploy(version, serving_image.tag)
        return notes + host.verify(check(version), None).notes

    deploy(good[0])
    assert _state(host) == {"blue": "running", "green": "absent"}
    assert upstream.read_text() == f"server 127.0.0.1:{blue};\n"
    assert (tmp_path / "reloaded").exists()

    with Watch(blue, upstream) as old:
        notes = deploy(good[1])
    assert _state(host) == {"blue": "stopped", "green": "running"}
    assert upstream.read_text() == f"server 127.0.0.1:{green};\n"
    assert any(f"port {green}" in note for note in notes)
    # Blue served until green had passed its smoke test and taken the traffic.
    assert old.polls > 0
    assert all(routed == f"server 127.0.0.1:{green};\n" for _error, routed in old.failures)

    rolled = host.undo()  # rollback: blue (kept, stopped) serves again, green goes
    assert _state(host) == {"blue": "running", "green": "absent"}
    assert upstream.read_text() == f"server 127.0.0.1:{blue};\n"
    assert any("restarted" in note for note in rolled)
    assert http_get(blue, "/ready")[0] == 200

    # A version whose bytes this image does not hold fails its smoke test on the new slot.
    wrong = Version("model", 3, "run", {TAG_SHA256: "e" * 64})
    host.deploy(wrong, serving_image.tag)
    with Watch(blue, upstream) as old, pytest.raises(DeployError, match="does not report"):
        host.verify(check(wrong), None)
    undone = host.undo()
    assert old.polls > 0
    assert old.failures == []
    assert _state(host) == {"blue": "running", "green": "absent"}
    assert upstream.read_text() == f"server 127.0.0.1:{blue};\n"
    assert any("removed" in note for note in undone)


def test_container_target_refuses_to_guess_when_both_slots_run(
    host: ContainerHost, serving_image: ServingImage
) -> None:
    for slot in ("blue", "green"):
        podman("run", "--detach", "--name", host.container(slot), "--entrypoint", "sleep",
               serving_image.tag, "60")  # fmt: skip
    with pytest.raises(DeployError, match=r"both .* are running"):
        host.deploy(Version("model", 1, "run", {}), serving_image.tag)
    with pytest.raises(DeployError, match="needs the image"):
        host.deploy(Version("model", 1, "run", {}), None)

"""``container``: blue/green on one Docker or Podman host.

The new version starts in the free slot (``NAME-blue`` or ``NAME-green``, each with its own port)
beside the running one, is smoke-tested on its own port, then gets the traffic (the proxy's
upstream file is rewritten and reloaded, or, with ``switch: ports``, whatever routes traffic
health-checks both ports), and only then is the old container stopped. It is kept, stopped, so
``undo`` can bring it back. A failed smoke test removes the new container: the old one never
stopped serving.
"""

from __future__ import annotations

import time
from typing import Literal

from modelci.config import ContainerTargetParams
from modelci.deploy.engine import Engine
from modelci.deploy.errors import DeployError
from modelci.deploy.smoke import SmokeCheck, request
from modelci.deploy.targets.base import Verified
from modelci.model_version import Version
from modelci.tags import TAG_SHA256

SLOTS = ("blue", "green")
Stage = Literal["idle", "started", "switched", "done"]


class ContainerHost:
    name = "container"

    def __init__(self, params: ContainerTargetParams, engine: Engine | None = None) -> None:
        self.params = params
        self.engine = engine or Engine(params.engine, params.ssh)
        self.stage: Stage = "idle"
        self.old: str | None = None
        self.new: str = SLOTS[0]

    def container(self, slot: str) -> str:
        return f"{self.params.name}-{slot}"

    def port(self, slot: str) -> int:
        return self.params.ports[SLOTS.index(slot)]

    def url(self, slot: str) -> str:
        return f"http://{self.params.address}:{self.port(slot)}"

    def live(self) -> str | None:
        """The slot serving now (the one running), or DeployError when both run."""
        running = [slot for slot in SLOTS if self.engine.state(self.container(slot)) == "running"]
        if len(running) == 2:
            raise DeployError(
                f"both {self.container('blue')} and {self.container('green')} are running (an "
                "interrupted deploy?): stop the one that does not serve traffic, then deploy again"
            )
        return running[0] if running else None

    def _run_args(self, slot: str, version: Version, image: str) -> list[str]:
        port = self.port(slot)
        args = ["run", "--detach", "--init", "--name", self.container(slot)]
        args += ["--restart", "unless-stopped", "--label", f"modelci.slot={slot}"]
        args += ["--label", f"modelci.model_version={version.version}"]
        if version.sha256:
            args += ["--label", f"{TAG_SHA256}={version.sha256}"]
        if self.params.network == "host":
            args += ["--network", "host", "--env", f"PORT={port}"]
        else:
            args += ["--publish", f"{port}:8080"]
        return [*args, *self.params.run_args, image]

    def deploy(self, version: Version, image: str | None) -> list[str]:
        if not image:
            raise DeployError(
                "the container target needs the image to run (--image, as release-image pushed it)"
            )
        self.old = self.live()
        self.new = SLOTS[1] if self.old == SLOTS[0] else SLOTS[0]
        new = self.container(self.new)
        if self.engine.state(new) != "absent":
            self.engine("rm", "--force", new)
        self.engine(*self._run_args(self.new, version, image))
        self.stage = "started"
        beside = f" beside {self.container(self.old)}" if self.old else ""
        return [f"started {new} ({image}) on port {self.port(self.new)}{beside}"]

    def _wait_ready(self, slot: str) -> None:
        """Poll the new container's /ready briefly, so the smoke test meets a started server."""
        deadline = time.monotonic() + self.params.start_seconds
        while time.monotonic() < deadline:
            if self.engine.state(self.container(slot)) != "running":
                return  # exited: the smoke test reports it
            if request(f"{self.url(slot)}/ready", timeout=2.0)[0] == 200:
                return
            time.sleep(0.25)

    def _route(self, slot: str) -> list[str]:
        if self.params.switch == "ports":
            return [f"traffic: port {self.port(slot)} is the live one"]
        content = self.params.upstream_template.replace("{port}", str(self.port(slot)))
        self.engine.write_file(self.params.upstream_file, content)
        notes = [f"traffic: {self.params.upstream_file} -> port {self.port(slot)}"]
        if self.params.reload_command:
            self.engine.shell(self.params.reload_command)
            notes.append(f"ran {self.params.reload_command!r}")
        return notes

    def verify(self, check: SmokeCheck, smoke_url: str | None) -> Verified:
        self._wait_ready(self.new)
        notes = check(self.url(self.new))
        self.stage = "switched"  # before routing: a half-done switch (reload failed) is undone
        notes += self._route(self.new)
        if smoke_url:
            notes += check(smoke_url)
        if self.old is not None:
            self.engine("stop", self.container(self.old))
            notes.append(f"stopped {self.container(self.old)} (kept for undo)")
        self.stage = "done"
        return Verified(True, notes)

    def undo(self) -> list[str]:
        """Before the switch: remove the new container. After it: the old one serves again."""
        notes: list[str] = []
        new = self.container(self.new)
        if self.stage == "idle":
            return notes
        if self.old is not None and self.stage in ("switched", "done"):
            old = self.container(self.old)
            if self.engine.state(old) != "running":
                self.engine("start", old)
                self._wait_ready(self.old)
                notes.append(f"restarted {old}")
            notes += self._route(self.old)
        self.engine("rm", "--force", new)
        notes.append(f"removed {new}")
        if self.old is not None:
            notes.append(f"{self.container(self.old)} serves the traffic")
        self.stage = "idle"
        return notes

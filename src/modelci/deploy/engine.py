"""The ``docker`` or ``podman`` CLI of one host: this machine, ``DOCKER_HOST``/``CONTAINER_HOST``
(read by the CLI itself from the environment), or another machine through a command prefix such
as ``ssh deploy@vm1``; files on that host are written the same way."""

from __future__ import annotations

import shlex
from pathlib import Path

from modelci.deploy.errors import DeployError
from modelci.deploy.run import run, tool
from modelci.fileio import write_text

TARGET = "container"


class Engine:
    def __init__(self, engine: str, ssh: str = "") -> None:
        self.engine = engine
        self.prefix = shlex.split(ssh)

    def _argv(self, words: list[str]) -> list[str]:
        if not self.prefix:
            return [tool(words[0], TARGET), *words[1:]]
        # ssh hands the remote shell one command string: quote every word.
        return [tool(self.prefix[0], TARGET), *self.prefix[1:], shlex.join(words)]

    def __call__(self, *args: str, timeout: float = 600) -> str:
        return run(self._argv([self.engine, *args]), f"{self.engine} {args[0]}", timeout=timeout)

    def state(self, container: str) -> str:
        """``running``, ``stopped`` or ``absent``."""
        try:
            out = self("container", "inspect", "--format", "{{.State.Running}}", container)
        except DeployError:
            return "absent"
        return "running" if out.strip() == "true" else "stopped"

    def shell(self, command: str) -> str:
        """Run a configured command line (a proxy's reload) on the host."""
        words = shlex.split(command)
        if not words:
            return ""
        return run(self._argv(words), f"{words[0]} (reload command)")

    def write_file(self, path: str, content: str) -> None:
        """Replace ``path`` on the host atomically (a temporary file renamed over it)."""
        if self.prefix:
            quoted = shlex.quote(path)
            script = f"cat > {quoted}.tmp && mv {quoted}.tmp {quoted}"
            run(self._argv(["sh", "-c", script]), f"writing {path}", stdin=content)
            return
        try:
            write_text(Path(path), content)
        except OSError as error:
            raise DeployError(f"{path}: cannot write the upstream file ({error})") from None

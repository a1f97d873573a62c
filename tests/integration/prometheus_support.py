"""A real Prometheus (Debian's ``prometheus``) for the tests: 127.0.0.1, a temporary storage
directory, a short scrape interval; started and stopped by PID with a bounded wait."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.process_support import ServerProcess, free_port


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def start_prometheus(
    root: Path, targets: dict[str, tuple[int, dict[str, str]]], rule_files: list[Path]
) -> ServerProcess:
    """Scrape each ``job: (port, labels)`` on 127.0.0.1 every second; caller stops it."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": labels}],
            }
            for job, (port, labels) in targets.items()
        ],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    binary = prometheus_binary()
    assert binary is not None
    process = ServerProcess(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        port,
        cwd=root,
    )
    try:
        process.wait_ready("/-/ready", timeout=60)
    except Exception:
        process.cleanup()
        raise
    return process

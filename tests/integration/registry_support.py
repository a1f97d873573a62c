"""A production-grade MLflow backend for the registry and release tests, all on 127.0.0.1.

``mlflow server`` (one worker) with a PostgreSQL 15 backend store and an S3 artifact store (a
moto server speaking the S3 protocol); the server proxies artifacts, so clients need no S3
credentials. One backend per test session (``mlflow_backend`` in ``tests/conftest.py``); each
test isolates itself with a registered-model name of its own.

PostgreSQL refuses to run as root: as root, ``initdb`` and ``postgres`` run as the ``postgres``
OS user (created by Debian's package; ``nobody`` otherwise) through ``runuser``, in a data
directory under the system temp dir (pytest's own temp root is private to root). Every process
is stopped by the PID this module started (its process group); the data directory is removed.
Where PostgreSQL or moto is missing, :func:`missing` names it and the tests skip with that reason.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import VENV_BIN, tool_env
from tests.process_support import free_port

# `mlflow server --workers 1` is ready in about 7 s on an idle machine, but took 103 s on the
# shared 2-core test machine at a load average of 14 (2026-12): a slow start is not a failure.
READY_TIMEOUT_S = 300.0
PG_READY_TIMEOUT_S = 30.0
PG_USER = "modelci"
PG_DATABASE = "mlflow"
BUCKET = "modelci-artifacts"
ARTIFACT_ROOT = "mlartifacts"
# moto accepts any credentials; boto3 (in the server) needs some to sign requests.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "modelci-test",
    "AWS_SECRET_ACCESS_KEY": "modelci-test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def postgres_bin() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: $MODELCI_PG_BIN, Debian's newest, or PATH."""
    if os.environ.get("MODELCI_PG_BIN"):
        return Path(os.environ["MODELCI_PG_BIN"])
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _service_user() -> str | None:
    """The OS user PostgreSQL runs as: ourselves unless root, then ``postgres`` or ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


def missing() -> str | None:
    """Why the backend cannot start here (None when it can)."""
    pg = postgres_bin()
    if pg is None or not (pg / "postgres").is_file():
        return "PostgreSQL is not installed (no initdb/postgres; `make system-deps` installs it)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser: cannot start PostgreSQL as a non-root user"
        if _service_user() is None:
            return "running as root with no postgres or nobody user to run PostgreSQL as"
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
        import psycopg2  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (moto[server], boto3 and psycopg2 are locked)"
    return None


def _stop_group(proc: subprocess.Popen[bytes], first: signal.Signals, grace: float = 20) -> None:
    """Signal the process group led by the PID we started; SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, first)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class PostgresServer:
    """A throwaway PostgreSQL cluster: trust auth, 127.0.0.1 only, its socket in its own dir."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="modelci-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.user = _service_user()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def _as_user(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else args

    def start(self) -> PostgresServer:
        pg = postgres_bin()
        assert pg is not None, missing()
        if self.user:
            shutil.chown(self.root, user=self.user)
        subprocess.run(
            self._as_user(
                [str(pg / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            "fsync": "off",  # a test cluster: durability is not what is tested
            "max_connections": "50",
        }
        args = [str(pg / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self._as_user(args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()
        conn = self._connect("postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            conn.cursor().execute(f"CREATE DATABASE {PG_DATABASE}")
        finally:
            conn.close()
        return self

    def _connect(self, database: str) -> Any:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=PG_USER, dbname=database, connect_timeout=2
        )

    def _wait_ready(self) -> None:
        import psycopg2

        assert self.proc is not None
        deadline = time.monotonic() + PG_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
            try:
                self._connect("postgres").close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"postgres not ready in {PG_READY_TIMEOUT_S}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop_group(proc, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        shutil.rmtree(self.root, ignore_errors=True)


class S3Server:
    """moto's S3 on 127.0.0.1 (a thread of the test process) with one bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> S3Server:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per S3 request
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_ENV["AWS_DEFAULT_REGION"],
        )

    def stop(self) -> None:
        if self.endpoint:
            self.server.stop()
            self.endpoint = ""


class MlflowServer:
    """``mlflow server`` on a free 127.0.0.1 port, one worker, with the given stores."""

    def __init__(self, root: Path, backend_store_uri: str, s3: S3Server) -> None:
        self.root = root
        self.port = free_port()
        self.backend_store_uri = backend_store_uri
        self.s3 = s3
        self.log = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [
            str(VENV_BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            f"s3://{BUCKET}/{ARTIFACT_ROOT}",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = tool_env(MLFLOW_S3_ENDPOINT_URL=self.s3.endpoint, **S3_ENV)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            if self.healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server not ready in {READY_TIMEOUT_S}s")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.uri + "/health", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            # uvicorn waits for idle keep-alive connections (MlflowClient's) without limit
            _stop_group(proc, signal.SIGTERM, grace=3)
        # the port is free again once nothing answers
        deadline = time.monotonic() + 10
        while self.healthy() and time.monotonic() < deadline:
            time.sleep(0.2)

    def artifact_key(self, run_id: str, path: str) -> str:
        """The S3 key of a run's artifact (``<root>/<experiment>/<run>/artifacts/<path>``)."""
        listing = self.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=ARTIFACT_ROOT + "/")
        suffix = f"/{run_id}/artifacts/{path}"
        found = [o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith(suffix)]
        if len(found) != 1:
            raise AssertionError(f"artifact {path} of run {run_id}: found {found}")
        return str(found[0])

    def read_artifact(self, key: str) -> bytes:
        return bytes(self.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def write_artifact(self, key: str, data: bytes) -> None:
        self.s3.client().put_object(Bucket=BUCKET, Key=key, Body=data)


@dataclass
class Backend:
    """PostgreSQL + S3 + the MLflow server over them."""

    postgres: PostgresServer
    s3: S3Server
    server: MlflowServer

    def stop(self) -> None:
        for part in (self.server, self.postgres, self.s3):
            part.stop()


def start_backend(root: Path) -> Backend:
    """Start the three services (stopping whatever started if a later one fails)."""
    started: list[Any] = []
    try:
        postgres = PostgresServer()
        started.append(postgres)
        postgres.start()
        s3 = S3Server()
        started.append(s3)
        s3.start()
        server = MlflowServer(root, postgres.uri, s3)
        started.append(server)
        server.start()
    except BaseException:
        for part in reversed(started):
            part.stop()
        raise
    return Backend(postgres, s3, server)

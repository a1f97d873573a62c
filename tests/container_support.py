"""Build and run the serving image with podman, offline but for the package registries.

No container registry is reachable here, so the base image is made locally: ``debootstrap
--variant=minbase bookworm`` with Debian's python3 (3.11, as the Dockerfile's ``python:3.11-slim``)
and pip, imported with ``podman import``. The rootfs tarball is cached under
``$XDG_CACHE_HOME/modelci/podman-base/`` keyed by what goes into it, so a rerun on one machine is
fast and a fresh CI machine builds it cold. ``podman build --from`` puts it in place of the
Dockerfile's first ``FROM``; the Dockerfile itself is the one adopters build with Docker.

Every podman call uses a private ``containers.conf`` (the settings this machine needs: runc,
cgroupfs, no default ulimits, file events) through ``CONTAINERS_CONF``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from tests.process_support import free_port, http_get

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-pip", "python-is-python3", "ca-certificates")
# What the base image drops after debootstrap: apt's caches and the docs (as the official slim
# images do), and Debian's PEP 668 marker, which the official python image does not have.
TRIM = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "usr/lib/python3.11/EXTERNALLY-MANAGED",
)
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
# What the image's build context holds (the Dockerfile's COPY sources), from this checkout.
CONTEXT_FILES = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "uv-requirements.txt",
)


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "modelci" / "podman-base"


def podman_problem() -> str | None:
    """Why podman cannot build and run the image on this machine, or None when it can."""
    for tool in ("podman", "runc", "debootstrap", "catatonit"):
        if shutil.which(tool) is None and not Path(f"/usr/libexec/podman/{tool}").exists():
            return f"{tool} is not installed (make system-deps installs it)"
    if os.geteuid() != 0:
        return "the base image is made with debootstrap, which needs root"
    if not HOST_CA.is_file():
        return f"{HOST_CA} not found (the build reaches the package index through it)"
    return None


def podman_env() -> dict[str, str]:
    """The environment every podman call here uses (its ``containers.conf``)."""
    conf = cache_dir() / "containers.conf"
    if not conf.is_file() or conf.read_text(encoding="utf-8") != CONTAINERS_CONF:
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF, encoding="utf-8")
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} exited {done.returncode}: {done.stderr}")
    return done


def base_key() -> str:
    recipe = json.dumps([SUITE, MIRROR, PACKAGES, TRIM, "minbase"]).encode()
    return hashlib.sha256(recipe).hexdigest()[:16]


def _make_rootfs_tarball(tarball: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="modelci-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        with subprocess.Popen(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
             str(rootfs), MIRROR],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ) as process:  # fmt: skip
            _RUNNING.append(process)
            try:
                output, _ = process.communicate(timeout=900)
            finally:
                _RUNNING.remove(process)
        if process.returncode != 0:
            raise AssertionError(f"debootstrap exited {process.returncode}: {output[-2000:]}")
        for relative in TRIM:
            path = rootfs / relative
            if path.is_dir():
                for child in path.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            else:
                path.unlink(missing_ok=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=300, check=True
        )
        partial.replace(tarball)


_BASE_LOCK = threading.Lock()
_RUNNING: list[subprocess.Popen[str]] = []


def stop_prefetch() -> None:
    """Stop a debootstrap the prefetch started, if the session ends before it does."""
    for process in list(_RUNNING):
        process.kill()


def prefetch_base_image() -> None:
    """Start making the base image in a background thread (debootstrap is mostly downloads and
    unpacking: it overlaps with the tests that run before the image is needed). Failures are
    not swallowed: ``base_image()`` retries, under the same lock, and raises them."""

    def make() -> None:
        with contextlib.suppress(Exception):
            base_image()

    threading.Thread(target=make, name="modelci-base-image", daemon=True).start()


def base_image() -> str:
    """The local python 3.11 base image (made, imported or found), by tag; one maker at a time,
    among this process's threads and among xdist workers (each prefetches it)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with _BASE_LOCK, FileLock(cache_dir() / "make.lock"):
        return _base_image()


def _base_image() -> str:
    key = base_key()
    tag = f"localhost/modelci-test-base:{key}"
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    tarball = cache_dir() / f"rootfs-{key}.tar"
    if not tarball.is_file():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        _make_rootfs_tarball(tarball)
    podman("import", "--change", 'CMD ["python3"]', str(tarball), tag)
    return tag


def build_context(target: Path, repo_root: Path, model_dir: Path) -> Path:
    """A build context as a model repository's checkout has it after ``dvc repro``."""
    for name in CONTEXT_FILES:
        shutil.copy2(repo_root / name, target / name)
    shutil.copy2(model_dir.parent / "params.yaml", target / "params.yaml")
    shutil.copytree(repo_root / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (target / "models").mkdir()
    shutil.copy2(model_dir / "model.skops", target / "models" / "model.skops")
    shutil.copytree(model_dir / "onnx", target / "models" / "onnx")
    return target


def build_image(context: Path, tag: str, model_sha256: str, variant: str = "onnx") -> str:
    """``podman build`` of ``context``'s ``variant`` (the Dockerfile's ``SERVE_VARIANT``: onnx,
    the default, or sklearn) on the local base, the model and its ONNX export pinned (as
    ``modelci release image`` does); returns ``tag``."""
    from modelci.serving.exported import export_sha256

    onnx_sha256 = export_sha256(context / "models" / "onnx", model_sha256) or ""
    podman(
        "build", "--pull=never", "--network=host", "--format", "docker", "--from", base_image(),
        "--volume", f"{HOST_CA}:{HOST_CA}:ro", "--build-arg", f"MODEL_SHA256={model_sha256}",
        "--build-arg", f"ONNX_SHA256={onnx_sha256}", "--build-arg", f"SERVE_VARIANT={variant}",
        "--tag", tag, str(context),
        timeout=1200,
    )  # fmt: skip
    return tag


def image_size(tag: str) -> int:
    """The image's size in bytes, as ``podman image inspect`` reports it."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


@contextmanager
def running(
    image: str, *args: str, port: int | None = None, ready: bool = True
) -> Iterator[tuple[str, int]]:
    """``podman run --init --network=host`` of ``image`` on ``port`` ($PORT); yields the
    container id and port once /ready answers (``ready``); removes the container afterwards."""
    port = port or free_port()
    started = podman(
        "run", "--detach", "--init", "--network=host", "--env", f"PORT={port}", *args, image
    )
    container = started.stdout.strip()
    try:
        if ready:
            wait_ready(container, port)
        yield container, port
    finally:
        podman("rm", "--force", "--time", "2", container, check=False)


def wait_ready(container: str, port: int, timeout: float = 60.0) -> float:
    """Seconds until ``/ready`` answers 200; AssertionError with the logs if it never does."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if http_get(port, "/ready", timeout=1.0)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        state = podman("container", "inspect", "--format", "{{.State.Running}}", container)
        if state.stdout.strip() != "true":
            break
        time.sleep(0.05)
    logs = podman("logs", container, check=False)
    raise AssertionError(f"container {container[:12]} never became ready:\n{logs.stderr[-2000:]}")

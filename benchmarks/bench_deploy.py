"""The serving image and the deploy targets, side by side; writes docs/benchmarks.md (``deploy``).

In one run, with podman on a locally made python 3.11 base (tests/container_support.py):

* image sizes: the serving image's two variants as the Dockerfile builds them (the default,
  onnx: ONNX Runtime only; ``--build-arg SERVE_VARIANT=sklearn``: with the scikit-learn fallback),
  where the default one's bytes go (``du`` of its site-packages by folder); what ``mlflow models
  generate-dockerfile`` (the Dockerfile of ``mlflow models build-docker``) produces for the same
  model; and MLServer with ``mlserver-sklearn``, pip-installed (its own images come from Docker Hub,
  not reachable here) -- all on the same base;
* container start to the first successful prediction (``podman run`` until ``POST /invocations``
  answers 200), and to ``/ready``;
* the AWS Lambda adapter's cold start: a fresh Python process from its first line to the first
  response of ``modelci.deploy.lambda_handler.handler`` (import, app build, one event);
* throughput of ``modelci serve`` inside the container against the same server outside it (wrk,
  single-row ``/invocations``, 1 thread, 8 connections).

Needs ``models/model.skops`` (``make repro``). Servers listen on 127.0.0.1 (the containers share
the host's network) and are stopped by id or PID.

    python benchmarks/bench_deploy.py [--repeats N] [--seconds S] [--no-mlflow]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, table, write_section  # noqa: E402

from modelci.fileio import file_digest  # noqa: E402
from tests.container_support import (  # noqa: E402
    HOST_CA,
    base_image,
    build_context,
    build_image,
    image_size,
    podman,
    podman_problem,
    wait_ready,
)
from tests.process_support import ServerProcess, free_port  # noqa: E402

# MLServer as issue 24 measures it (its parallel workers need uvloop 0.21, SeldonIO/MLServer#2286).
MLSERVER = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")
EVENT = {
    "version": "2.0",
    "rawPath": "/invocations",
    "rawQueryString": "",
    "headers": {"content-type": "application/json"},
    "requestContext": {"http": {"method": "POST", "path": "/invocations", "sourceIp": "127.0.0.1"}},
    "isBase64Encoded": False,
}
COLD_START = """
import time
start = time.perf_counter()
from modelci.deploy.lambda_handler import handler
answer = handler(EVENT, None)
assert answer["statusCode"] == 200, answer
print(time.perf_counter() - start)
"""


def mb(size: float) -> str:
    return f"{size / 1e6:.0f} MB"


def one_row() -> bytes:
    import pandas as pd

    from modelci.config import load_service_params

    params = load_service_params(REPO / "params.yaml")
    frame = pd.read_parquet(REPO / "data/prepared/test.parquet")[params.data.features].head(1)
    return json.dumps({"dataframe_records": json.loads(frame.to_json(orient="records"))}).encode()


def post_ok(port: int, body: bytes) -> bool:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def start_to_prediction(image: str, body: bytes, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds from ``podman run`` to /ready, and to the first 200 of /invocations."""
    ready, predicted = [], []
    for _ in range(repeats):
        port = free_port()
        start = time.monotonic()
        container = podman(
            "run", "--detach", "--init", "--network=host", "--env", f"PORT={port}", image
        ).stdout.strip()
        try:
            wait_ready(container, port)
            ready.append(time.monotonic() - start)
            while not post_ok(port, body):
                time.sleep(0.02)
            predicted.append(time.monotonic() - start)
        finally:
            podman("rm", "--force", "--time", "2", container, check=False)
    return ready, predicted


def host_start_to_prediction(body: bytes, repeats: int) -> tuple[list[float], list[float]]:
    """The same, for ``modelci serve`` of the same model started on the host (from .venv)."""
    ready, predicted = [], []
    model = REPO / "models/model.skops"
    for _ in range(repeats):
        port = free_port()
        command = [str(Path(sys.executable).parent / "modelci"), "serve", "--model", str(model),
                   "--port", str(port)]  # fmt: skip
        start = time.monotonic()
        with ServerProcess(command, port, cwd=REPO, env=dict(os.environ)) as server:
            server.wait_ready()
            ready.append(time.monotonic() - start)
            while not post_ok(port, body):
                time.sleep(0.02)
            predicted.append(time.monotonic() - start)
            server.stop()
    return ready, predicted


def lambda_cold_start(body: bytes, repeats: int) -> list[float]:
    event = {**EVENT, "body": body.decode()}
    code = f"EVENT = {json.dumps(event)!r}\nimport json\nEVENT = json.loads(EVENT)\n" + COLD_START
    environment = {
        **os.environ,
        "MODELCI_MODEL_URI": str(REPO / "models/model.skops"),
        "MODELCI_PARAMS": str(REPO / "params.yaml"),
    }
    samples = []
    for _ in range(repeats):
        done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
            [sys.executable, "-c", code], env=environment, capture_output=True, text=True,
            timeout=300, check=True,
        )  # fmt: skip
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return samples


def wrk(port: int, body: bytes, seconds: int, work: Path) -> float:
    """Requests per second of single-row POST /invocations (wrk -t1 -c8)."""
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n",
        encoding="utf-8",
    )
    done = subprocess.run(  # noqa: S603
        ["wrk",  # noqa: S607 - Debian's wrk on PATH "-t1", "-c8", f"-d{seconds}s", "-s", str(script),
         f"http://127.0.0.1:{port}/invocations"],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("Requests/sec:"))
    return float(line.split()[1])


def mlflow_image(work: Path) -> str:
    """``mlflow models generate-dockerfile`` for this model, built on the same base."""
    import mlflow.sklearn
    import skops.io as sio

    from modelci.config import load_service_params
    from modelci.modelfile import load_model

    model_path = REPO / "models/model.skops"
    params = load_service_params(REPO / "params.yaml")
    model = load_model(model_path, params.trusted_types)
    import sklearn
    import skops

    saved = work / "mlmodel"
    mlflow.sklearn.save_model(
        model,
        str(saved),
        serialization_format="skops",
        skops_trusted_types=sio.get_untrusted_types(file=str(model_path)),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}"],
    )
    subprocess.run(  # noqa: S603 - this venv's mlflow
        [str(Path(sys.executable).parent / "mlflow"), "models", "generate-dockerfile",
         "-m", str(saved), "-d", str(work / "mlflow-image"), "--env-manager", "local"],
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"},
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    tag = "localhost/modelci-bench:mlflow"
    podman(
        "build", "--pull=never", "--network=host", "--format", "docker", "--from", base_image(),
        "--volume", f"{HOST_CA}:{HOST_CA}:ro", "--tag", tag, str(work / "mlflow-image"),
        timeout=1800,
    )  # fmt: skip
    return tag


def mlserver_image(work: Path) -> str:
    """MLServer and its scikit-learn runtime, pip-installed on the same base with this
    environment's scikit-learn (the model, a few kB, left out): the layer its image would add."""
    import sklearn

    folder = work / "mlserver-image"
    folder.mkdir()
    packages = " ".join([*MLSERVER, f"scikit-learn=={sklearn.__version__}"])
    (folder / "Dockerfile").write_text(
        "FROM scratch\n"  # replaced by --from
        f"RUN python -m pip install --no-cache-dir --no-compile {packages}\n"
        'ENTRYPOINT ["mlserver", "start", "/models"]\n',
        encoding="utf-8",
    )
    tag = "localhost/modelci-bench:mlserver"
    podman(
        "build", "--pull=never", "--network=host", "--format", "docker", "--from", base_image(),
        "--volume", f"{HOST_CA}:{HOST_CA}:ro", "--tag", tag, str(folder), timeout=1800,
    )  # fmt: skip
    return tag


def site_packages(tag: str, top: int = 8) -> list[list[str]]:
    """The largest folders of the image's site-packages (``du``), the rest summed."""
    done = podman(
        "run", "--rm", "--entrypoint", "sh", tag, "-c",
        "cd /opt/venv/lib/python3*/site-packages && du -sk -- *",
    )  # fmt: skip
    folders = (line.split("\t", 1) for line in done.stdout.splitlines())
    sizes = sorted(((int(kb) * 1024, name) for kb, name in folders), reverse=True)
    rows = [[f"`{name}`", mb(size)] for size, name in sizes[:top]]
    rows.append([f"{len(sizes) - top} others", mb(sum(size for size, _ in sizes[top:]))])
    rows.append(["all of site-packages", mb(sum(size for size, _ in sizes))])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--no-mlflow", action="store_true", help="skip the mlflow image")
    args = parser.parse_args()
    problem = podman_problem()
    if problem is not None:
        sys.exit(f"bench_deploy: podman cannot run here: {problem}")
    model = REPO / "models/model.skops"
    if not model.is_file():
        sys.exit(f"bench_deploy: {model} not found (run make repro)")
    body = one_row()
    sha = file_digest(model)
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        work = Path(tmp)
        (work / "context").mkdir()
        context = build_context(work / "context", REPO, model.parent)
        default = build_image(context, "localhost/modelci-bench:default", sha)
        fallback = build_image(context, "localhost/modelci-bench:sklearn", sha, "sklearn")
        images = [
            ("serving image, default (onnx) variant: ONNX Runtime only", default),
            ("serving image, `SERVE_VARIANT=sklearn`: with the scikit-learn fallback", fallback),
        ]
        if not args.no_mlflow:
            images.append(
                ("`mlflow models generate-dockerfile` image, same base", mlflow_image(work))
            )
            images.append(
                ("MLServer 1.7.1 + mlserver-sklearn, pip-installed on the same base",
                 mlserver_image(work))
            )  # fmt: skip
        rows = [[name, mb(image_size(tag))] for name, tag in images]
        sizes = site_packages(default)
        rows.append(["the local python 3.11 base itself", mb(image_size(base_image()))])

        starts = []
        for name, tag in images[:2]:
            ready, predicted = start_to_prediction(tag, body, args.repeats)
            starts.append([name, f"{median(ready):.2f} s", f"{median(predicted):.2f} s"])
        ready, predicted = host_start_to_prediction(body, args.repeats)
        starts.append(["`modelci serve` on the host, same model (no container)",
                       f"{median(ready):.2f} s", f"{median(predicted):.2f} s"])  # fmt: skip
        cold = lambda_cold_start(body, args.repeats)

        port = free_port()
        container = podman(
            "run", "--detach", "--init", "--network=host", "--env", f"PORT={port}", default
        ).stdout.strip()
        try:
            wait_ready(container, port)
            inside = wrk(port, body, args.seconds, work)
        finally:
            podman("rm", "--force", "--time", "2", container, check=False)
        port = free_port()
        command = [str(Path(sys.executable).parent / "modelci"), "serve", "--model", str(model),
                   "--port", str(port)]  # fmt: skip
        with ServerProcess(command, port, cwd=REPO, env=dict(os.environ)) as server:
            server.wait_ready()
            outside = wrk(port, body, args.seconds, work)
            server.stop()

    body_md = "\n\n".join(
        [
            table(["Image", "Size (podman image inspect)"], rows),
            table(["Default variant's site-packages, by folder (du)", "Size"], sizes),
            table(["Started", "start to /ready", "to first prediction (200)"], starts),
            table(
                ["Lambda adapter cold start (fresh process: import, app, one event)", "Median"],
                [[f"{args.repeats} runs", f"{median(cold):.2f} s"]],
            ),
            table(
                ["`modelci serve`, single-row /invocations, wrk -t1 -c8", "Requests/s"],
                [
                    ["in the container (--network=host)", f"{inside:.0f}"],
                    ["on the host (the same server from .venv)", f"{outside:.0f}"],
                    ["ratio inside / outside", f"{inside / outside:.2f}"],
                ],
            ),
        ]
    )
    command = " ".join(["python benchmarks/bench_deploy.py", *sys.argv[1:]])
    write_section("deploy", "Serving image and deploy targets", body_md, command)


if __name__ == "__main__":
    main()

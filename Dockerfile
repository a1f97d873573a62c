# syntax=docker/dockerfile:1
# The serving image: `modelci serve` on $PORT (8080), as a non-root user, with the model baked in
# and only the packages serving imports (no DVC, no MLflow, no build tools). Build from the
# repository root after `dvc repro` (or `dvc pull`) has written models/model.skops:
#   docker build --build-arg MODEL_SHA256="$(sha256sum models/model.skops | cut -d' ' -f1)" \
#     --build-arg ONNX_SHA256="$(sha256sum models/onnx/model.onnx | cut -d' ' -f1)" -t modelci-serve .
# It serves /app/models/model.skops (with ONNX Runtime from the export stage's models/onnx/ when
# it matches those bytes), refusing it at start when MODEL_SHA256 is given and differs; with the
# model pinned, the export is used only when ONNX_SHA256 pins it too (a mismatch stops the start;
# `modelci release image` passes both). See
# docs/deploy.md of modelci.
#
# Two variants, chosen with --build-arg SERVE_VARIANT:
#   onnx (the default): ONNX Runtime and what serving imports, none of scikit-learn, SciPy,
#     pandas, skops, skl2onnx or onnx. It serves only the build-time export that verifies against
#     the model, and refuses to start, naming the variant to build instead, when none does.
#   sklearn: also scikit-learn and the converters, the fallback that loads the model itself (and
#     converts it at start, or serves it with scikit-learn) when the export does not verify.
ARG SERVE_VARIANT="onnx"

# The base image by digest, so a rebuild gets the same bytes; dependabot's docker updates propose
# a new digest (modelci's docs/security.md says how this one was chosen). Both stages start from
# this one, so `podman build --from IMAGE` (which replaces the first FROM) can substitute a
# locally made python 3.11 base where no registry is reachable (docs/deploy.md).
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS base

# ---- build: the locked environment, minus what serving never imports, into /opt/venv ---------
FROM base AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_SYSTEM_CERTS=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY uv-requirements.txt /tmp/
RUN python -m pip install --no-cache-dir --require-hashes -r /tmp/uv-requirements.txt
# Locked packages left out of the image, with every dependency only they need (`uv export --prune`).
ARG SERVE_PRUNE="dvc mlflow mlflow-skinny sqlalchemy alembic pandera matplotlib pyarrow dalex"
# Left out of the onnx variant as well: what only loading the model itself or converting it needs.
# (protobuf, flatbuffers and packaging are ONNX Runtime's, for its model tools, never imported here.)
ARG ONNX_VARIANT_PRUNE="scikit-learn scipy pandas skops skl2onnx onnx onnxmltools xgboost \
xgboost-cpu lightgbm threadpoolctl requests protobuf flatbuffers packaging"
ARG SERVE_VARIANT
# The project's extras serving needs, if any. A repository made by `modelci init` has none (its
# dependency on modelci[serve,onnx] brings the server and ONNX Runtime); modelci's own repository
# names its serve, onnx and boosting extras (not dask, testing or demo).
ARG SERVE_EXTRAS="serve onnx boosting"
WORKDIR /src
# Dependencies first (cached until uv.lock changes), then the project itself, without its deps.
COPY pyproject.toml uv.lock README.md ./
RUN case "$SERVE_VARIANT" in \
        onnx) prune="$SERVE_PRUNE $ONNX_VARIANT_PRUNE" ;; \
        sklearn) prune="$SERVE_PRUNE" ;; \
        *) echo "SERVE_VARIANT is '$SERVE_VARIANT': choose onnx or sklearn" >&2; exit 1 ;; \
    esac \
    && python -m uv venv /opt/venv \
    && python -m uv export --frozen --no-default-groups --no-emit-project \
        $(for name in $SERVE_EXTRAS; do printf -- '--extra %s ' "$name"; done) \
        $(for name in $prune; do printf -- '--prune %s ' "$name"; done) -o /tmp/serve.txt \
    && python -m uv pip install --python /opt/venv/bin/python --no-deps -r /tmp/serve.txt
COPY src/ src/
RUN python -m uv pip install --python /opt/venv/bin/python --no-deps . \
    && find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +
# The onnx variant also drops what its wheels ship beyond serving (docs/deploy.md measures it):
# ONNX Runtime's C API library (its Python module is linked statically and never loads it) and its
# model tools; numpy's f2py and distutils, the subpackages it loads only when asked for (random,
# ma, polynomial, fft, testing) and its test-only extension modules; type stubs and C headers.
# It keeps compiled bytecode only for modelci and for what serving imports at start (written by
# importing it here, which also fails the build if the trim removed any of it).
ARG ONNX_VARIANT_TRIM="onnxruntime/capi/libonnxruntime.so.* onnxruntime/transformers \
onnxruntime/quantization onnxruntime/tools numpy/f2py numpy/distutils numpy/random numpy/ma \
numpy/polynomial numpy/fft numpy/testing numpy/_core/_simd.* numpy/_core/_*_tests.* \
numpy/_core/include"
RUN if [ "$SERVE_VARIANT" = onnx ]; then \
        cd /opt/venv/lib/python3.*/site-packages && rm -rf $ONNX_VARIANT_TRIM \
        && find . -name '*.pyi' -delete \
        && find . -path ./modelci -prune -o -name '*.pyc' -exec rm -f {} + \
        && /opt/venv/bin/python -c 'import modelci.cli, modelci.config, modelci.serving.server, \
modelci.serving.connections, uvicorn.main, uvicorn.protocols.http.h11_impl, uvicorn.lifespan.on, \
uvicorn.loops.asyncio, prometheus_client.multiprocess, onnxruntime'; \
    fi

# ---- runtime: the venv, the input schema and the model, nothing else --------------------------
FROM base AS runtime
RUN groupadd --system --gid 10001 modelci \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin modelci
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY params.yaml ./
# Both written by `dvc repro`: the model, and the export stage's folder (a manifest, and the ONNX
# file when the model converts; the server checks it against ONNX_SHA256 at start).
COPY models/model.skops ./models/
COPY models/onnx/ ./models/onnx/
ARG MODEL_SHA256=""
ARG ONNX_SHA256=""
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PORT=8080 \
    MODELCI_HOST=0.0.0.0 \
    MODELCI_PARAMS=/app/params.yaml \
    MODELCI_MODEL_URI=/app/models/model.skops \
    MODELCI_MODEL_SHA256=$MODEL_SHA256 \
    MODELCI_ONNX_SHA256=$ONNX_SHA256
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + (os.environ.get('MODELCI_PORT') or os.environ.get('PORT') or '8080') + '/health', timeout=2)"]
ENTRYPOINT ["modelci", "serve"]

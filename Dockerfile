# syntax=docker/dockerfile:1
# The serving image: `modelci serve` on port 8080, as a non-root user, with the locked
# dependencies and nothing to build anything with. Build from the repository root:
#   docker build -t modelci-serve .
# It serves MODELCI_MODEL_URI (default: the @champion of the registry at MLFLOW_TRACKING_URI),
# verifying the artifact's sha256 before loading it. See docs/serving.md of modelci.

# The base image by digest, so a rebuild gets the same bytes; dependabot's docker updates propose
# a new digest (modelci's docs/security.md says how this one was chosen).

# ---- build: resolve the locked environment into /opt/venv ---------------------------------
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY uv-requirements.txt /tmp/
RUN python -m pip install --no-cache-dir --require-hashes -r /tmp/uv-requirements.txt
WORKDIR /src
# Dependencies first (cached until uv.lock changes), then the project itself, not editable.
COPY pyproject.toml uv.lock README.md ./
RUN python -m uv sync --frozen --no-default-groups --all-extras --no-install-project
COPY src/ src/
RUN python -m uv sync --frozen --no-default-groups --all-extras --no-editable

# ---- runtime: the venv and the input schema, nothing else -----------------------------------
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS runtime
RUN groupadd --system --gid 10001 modelci \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin modelci
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY params.yaml ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MODELCI_HOST=0.0.0.0 \
    MODELCI_PORT=8080 \
    MODELCI_PARAMS=/app/params.yaml
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MODELCI_PORT', '8080') + '/health', timeout=2)"]
ENTRYPOINT ["modelci", "serve"]

# The README's commands. `make repro` and `make test` work on a fresh clone with only Python 3.11+
# and pip: the first target installs a pinned uv, then the locked environment into .venv.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PYTHON_DOWNLOADS := never
# Compile .pyc at install: imports (half of every stage's run time) do not re-parse sources, even
# where PYTHONDONTWRITEBYTECODE is set.
export UV_COMPILE_BYTECODE := 1

.PHONY: help install system-deps mermaid openapi repro test check tiers lint format pytest bench bench-pipeline bench-serving bench-serving-stages bench-serving-threads bench-serving-mlserver bench-check-params bench-workflows bench-workflows-projects bench-adoption bench-report bench-gauges bench-deploy bench-registry bench-drift bench-projects docs dag clean serve

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS) uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed ## install the locked environment into .venv

repro: install ## run the pipeline end to end (dvc repro) and print the metrics
	dvc repro
	dvc metrics show

lint: install ## ruff (PEP 8, pyflakes, imports, bugbear, bandit), black, mypy, the layer contract (lint-imports), actionlint, zizmor
	ruff check .
	black --check --quiet .
	mypy
	lint-imports --no-cache --no-logo
	actionlint
	zizmor --offline --quiet .github

format: install ## apply ruff's fixes and black
	ruff check --fix .
	black .

# XDIST=N runs pytest in N worker processes (pytest-xdist): the tests that share a module fixture
# or the serving image stay on one worker, the slow ones start first (docs/testing.md). Off by
# default for `make pytest`; `make check` runs two workers unless XDIST says otherwise (XDIST=0:
# one process): its tiers are about 120 s of CPU, which two free cores halve, for about 15 s of
# CPU more (each worker collects the tiers).
XDIST ?=
xdist_args = -n $(1) --dist loadgroup --no-loadscope-reorder

pytest: install ## the test suite only (XDIST=2: in two processes)
	pytest $(if $(XDIST),$(call xdist_args,$(XDIST)))

# `make check` runs `lint` beside `tiers` (make -j2): the tiers' workers wait on git, DVC and
# loopback servers much of the time, and a fresh clone's mypy (no .mypy_cache: about 25 s of one
# core) fills it. Each target's output is printed whole when it ends; either failing fails check.
check: install ## lint beside the unit and data tiers in two processes: no dvc repro, server or container (XDIST=0: one)
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint tiers

# PYTHONDONTWRITEBYTECODE (set on some machines) is cleared for pytest: with it, each worker
# compiled the package and rewrote every test module's asserts again on every run (about 3 s of
# CPU per process); without it they are cached in __pycache__ (git-ignored) after the first run.
tiers: install ## the unit and data tiers only (what `make check` runs beside `lint`)
	PYTHONDONTWRITEBYTECODE= pytest -q -m "unit or data" $(call xdist_args,$(or $(XDIST),2)) tests/unit tests/data

# Real services the tests start on 127.0.0.1 (PostgreSQL, Prometheus, podman, wrk), the browser
# the Mermaid render test drives (chromium) and real CLIs the stand-ins are held to (gh, openssl
# for the tests' certificates), from Debian's packages; Debian's nodejs and npm too when no npm is
# on PATH (a NodeSource nodejs already ships npm, and Debian's npm conflicts with it). Installed
# when this runs as root with apt (a fresh CI machine); elsewhere the tests that need a missing
# one skip and name it.
SYSTEM_PACKAGES := podman runc catatonit debootstrap uidmap postgresql prometheus wrk chromium openssl gh
system-deps: ## install the services the tests use (Debian packages; needs root)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; \
	  fi; \
	else echo "system-deps: not root with apt; tests needing $(SYSTEM_PACKAGES) skip if absent"; fi

# The Mermaid renderer of GitHub's major version (tests/tools/mermaid pins it), for the test that
# renders a report's charts offline with Debian's chromium. Puppeteer never downloads a browser:
# install scripts are off and the skip variables set. Without npm it says so and the test skips.
MERMAID := $(TOOLS)/mermaid
MERMAID_PINS := tests/tools/mermaid/package.json tests/tools/mermaid/package-lock.json
$(MERMAID)/.installed: $(MERMAID_PINS)
	@if command -v npm >/dev/null; then \
	  rm -rf $(MERMAID) && mkdir -p $(MERMAID) && cp $(MERMAID_PINS) $(MERMAID)/ && \
	  cd $(MERMAID) && PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROMIUM_DOWNLOAD=1 \
	    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch .installed; \
	else echo "mermaid: npm not found; the Mermaid render test skips"; fi

mermaid: $(MERMAID)/.installed ## install mermaid-cli into .tools/mermaid (npm ci of the pinned lockfile)

 ## lint, then the whole test suite (what CI runs)

# GitHub's official OpenAPI description (npm @octokit/openapi, pinned by the committed lock file),
# which the tests' fake GitHub API is held to; the spec itself is never committed.
OPENAPI := $(TOOLS)/openapi
OPENAPI_PINS := tests/workflows/openapi/package.json tests/workflows/openapi/package-lock.json
$(OPENAPI)/.installed: $(OPENAPI_PINS)
	@if command -v npm >/dev/null; then \
	  rm -rf $(OPENAPI) && mkdir -p $(OPENAPI) && cp $(OPENAPI_PINS) $(OPENAPI)/ && \
	  cd $(OPENAPI) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch .installed; \
	else echo "openapi: npm not found; the tests that use the fake GitHub API skip"; fi

openapi: $(OPENAPI)/.installed ## install GitHub's OpenAPI description into .tools/openapi (npm)

test: lint system-deps mermaid openapi pytest ## lint, then the whole test suite (what CI runs)

bench: bench-pipeline bench-serving bench-serving-stages bench-serving-threads bench-serving-mlserver bench-check-params bench-workflows bench-workflows-projects bench-adoption bench-report bench-gauges bench-deploy bench-registry bench-drift bench-projects ## every benchmark; writes docs/benchmarks.md

bench-pipeline: install ## full/no-op dvc repro, modelci --help, per-stage imports
	python benchmarks/bench_pipeline.py

MODEL ?= models/model.skops
serve: install ## serve MODEL (a .skops path or models:/NAME@ALIAS) on 127.0.0.1:8080
	modelci serve --model $(MODEL)

bench-deploy: install ## serving image sizes (vs mlflow's), container start, Lambda cold start, throughput in/out of the container
	python benchmarks/bench_deploy.py

bench-serving: install ## serving latency/throughput vs mlflow models serve (QUICK=1 for a dry run)
	python benchmarks/bench_serving.py $(if $(QUICK),--quick,)

bench-serving-stages: install ## every step of a large request in process, metrics per batch vs per row (QUICK=1)
	python benchmarks/bench_serving_stages.py $(if $(QUICK),--quick,)

bench-serving-threads: install ## large batches with and without serve --batch-threads, and the model call alone (QUICK=1)
	python benchmarks/bench_serving_threads.py $(if $(QUICK),--quick,)

bench-serving-mlserver: install ## v2 /infer beside MLServer 1.7.1 (own venv in .bench/), the model limit (QUICK=1)
	python benchmarks/bench_serving_mlserver.py $(if $(QUICK),--quick,)

bench-check-params: install ## modelci check-params against the imports it cannot avoid, CPU time
	python benchmarks/bench_check_params.py

bench-workflows: install ## the PR workflow under act, cold and warm, per job (QUICK=1 for a dry run)
	python benchmarks/bench_workflows.py $(if $(QUICK),--quick,)

bench-workflows-projects: install ## the PR workflow under act on three models: 1 affected against 3, per job (QUICK=1)
	python benchmarks/bench_workflows_projects.py $(if $(QUICK),--quick,)

bench-report: install ## PR report with/without its statistics: default data, 10^5 and 10^6 rows
	python benchmarks/bench_report.py

bench-adoption: install ## modelci init to a green repro + pytest; adopter footprint; --help time
	python benchmarks/bench_adoption.py

bench-projects: install ## modelci affected vs dvc status on a repository of 200 projects
	python benchmarks/bench_projects.py

bench-drift: install ## modelci monitor drift time and peak memory for 10^4, 10^5, 10^6 rows (after repro)
	python benchmarks/bench_drift.py

bench-gauges: install ## serving p50/throughput with and without the live input gauges (QUICK=1 for a dry run)
	python benchmarks/bench_gauges.py $(if $(QUICK),--quick,)

bench-registry: install ## register, promote, status against mlflow server on PostgreSQL + S3
	python benchmarks/bench_registry.py

docs: install ## rewrite docs/cli.md from the CLI's parsers, the layer table of docs/development.md, docs/security.md's pin table
	python -m tests.cli_reference
	python -m tests.layers_reference
	python -m tests.pin_table

dag: install ## show the pipeline graph
	dvc dag

clean: ## remove the environment and tool caches (keeps data and models)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .mypy_cache

# Backlog Bridge — two commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run demo serve test lint typecheck unit clean reliability bench bench-quick image deploy-test

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: the main job on the JSONL default (no database needed): the whole pipeline on demo
## data (signals -> risk snapshots -> risk digest -> platform digest -> weekly generation),
## the dashboard printed, then the router and web dashboard on http://127.0.0.1:8000/
## (`make run PORT=8001` serves another port; without PORT, $$BACKLOG_PORT or 8000)
run: demo
	BACKLOG_BACKEND=$${BACKLOG_BACKEND:-jsonl} $(BIN)/backlog serve --key-file .local-keys $(if $(PORT),--port $(PORT))

## demo: the pipeline and the printed dashboard, without starting the server
demo: install
	BACKLOG_BACKEND=$${BACKLOG_BACKEND:-jsonl} $(BIN)/python -m services.router.demo --pipeline

## test: lint, type-check and the whole test suite (Postgres tests use 127.0.0.1:5432)
test: install lint typecheck unit

## lint: ruff; import-linter (layers, no cycles between packages: .importlinter); vulture (dead code)
lint: install
	$(BIN)/ruff check services tests ops bench
	$(BIN)/lint-imports
	$(BIN)/vulture

typecheck: install
	$(BIN)/mypy

unit: install
	./ops/scripts/install_test_deps.sh
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## reliability: full-count crash/outage/abuse suite; prints the figures table, non-zero on a miss
reliability: install
	$(BIN)/python -m tests.reliability.run

## bench: every metric against its physical floor at full size (bench/RESULTS.md); bench-quick: < 2 min
bench: install
	./ops/scripts/install_test_deps.sh bench
	$(BIN)/python -m bench.run

bench-quick: install
	./ops/scripts/install_test_deps.sh bench
	$(BIN)/python -m bench.run --quick

## image: the container image (Containerfile) with podman, else docker. On a site mirror:
##   make image BASE_IMAGE=registry.example/python:3.11-slim-bookworm
## BUILD_FLAGS adds engine flags, e.g. BUILD_FLAGS='--network=host' where builds need the host network.
ENGINE     ?= $(shell command -v podman 2>/dev/null || command -v docker 2>/dev/null || echo podman)
IMAGE      ?= localhost/backlog-bridge:latest
BASE_IMAGE ?= python:3.11-slim-bookworm
BUILD_FLAGS ?=
image:
	$(ENGINE) build $(if $(findstring podman,$(ENGINE)),--format docker) $(BUILD_FLAGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) .

## deploy-test: image + compose stack under Podman, routers and a scheduler killed under load;
## prints the figures table (not part of `make test`; ~5 min)
deploy-test: install
	./ops/scripts/install_test_deps.sh deploy
	$(BIN)/python -m tests.deploy.run

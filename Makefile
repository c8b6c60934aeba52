# Every target installs what it needs: uv (through pip, if missing) and the locked dependencies.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(HOME)/.local/bin/uv")
RUN := $(UV) run --frozen

.PHONY: help install run test lint fmt typecheck lint-deploy check up down logs ps bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m pip install --user --quiet uv || $(PYTHON) -m pip install --quiet --break-system-packages --user uv

install: $(UV) ## Install the locked dependencies into .venv (uv sync --frozen)
	$(UV) sync --frozen --quiet

run: install ## Serve on http://127.0.0.1:8000 (memory cache + SQLite unless REDIS_URL / DATABASE_URL are set)
	$(RUN) python -m app

test: install ## Run the whole test suite against real servers
	$(RUN) pytest $(PYTEST_ARGS)

lint: install ## ruff check and ruff format --check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

fmt: install ## Format and auto-fix with ruff
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

typecheck: install ## pyright: strict on app/, basic on tests/
	$(RUN) pyright

lint-deploy: install ## Validate Dockerfile (hadolint), compose.yaml (Compose spec) and deploy/ (Kubernetes, strict)
	$(RUN) hadolint Dockerfile
	$(RUN) python deploy/validate_compose.py compose.yaml
	$(RUN) python deploy/validate_manifests.py deploy/kustomization.yaml

check: lint typecheck lint-deploy test ## Everything CI runs

bench: install ## Benchmarks (needs wrk; BENCH_* in bench/README.md); only a full run writes bench/RESULTS.md
	$(RUN) python -m bench.run

# The Compose stack needs a Docker engine (`docker compose`); nothing else in this Makefile does.
COMPOSE ?= docker compose

up: ## Build the image and start app + Redis + PostgreSQL (compose.yaml), waiting until healthy
	$(COMPOSE) up --build --detach --wait

down: ## Stop the Compose stack (the PostgreSQL volume is kept; add ARGS=--volumes to drop it)
	$(COMPOSE) down $(ARGS)

logs: ## Follow the Compose stack's logs
	$(COMPOSE) logs --follow

ps: ## Show the Compose services and their health
	$(COMPOSE) ps

# Every target installs what it needs: uv (through pip, if missing) and the locked dependencies.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3

# Where uv is: on PATH; else where `pip install --user` puts it; else wherever pip installed the `uv` package
# (`pip install --user uv` can answer "already satisfied" for a uv installed elsewhere, with no ~/.local/bin/uv).
FIND_UV = command -v uv 2>/dev/null || { test -x "$(HOME)/.local/bin/uv" && echo "$(HOME)/.local/bin/uv"; } \
	|| $(PYTHON) -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null
# Recursive, so each target looks again after `install` has run.
UV = $(shell $(FIND_UV))
RUN = $(UV) run --frozen

.PHONY: help install run test lint fmt typecheck lint-deploy check readme clean-data up down logs ps compose-check bench chaos

help: ## List the targets
	@if [ -t 1 ]; then colour='\033[36m'; plain='\033[0m'; else colour=; plain=; fi; \
	grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' -v c="$$colour" -v p="$$plain" '{printf "  %s%-14s%s %s\n", c, $$1, p, $$2}'

install: ## Install the locked dependencies into .venv (uv sync --frozen), and uv with pip if it is missing
	@{ $(FIND_UV); } >/dev/null || { echo "--- installing uv with pip"; $(PYTHON) -m pip install --user --quiet uv \
		|| $(PYTHON) -m pip install --user --quiet --break-system-packages uv; }
	@uv="$$($(FIND_UV))" || { echo "uv is not on PATH, not in ~/.local/bin, and $(PYTHON) has no uv package:" \
		"install it (https://docs.astral.sh/uv/getting-started/installation/) or put it on PATH" >&2; exit 1; }; \
	echo "$$uv sync --frozen --quiet"; "$$uv" sync --frozen --quiet

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

readme: install ## Regenerate README.md's configuration table from the Settings docstrings in app/config.py
	$(RUN) python -m app.usage README.md

bench: install ## Benchmarks (needs wrk; BENCH_* in bench/README.md); only a full run writes bench/RESULTS.md
	$(RUN) python -m bench.run

chaos: install ## Chaos tests of issue 13: app instances over throw-away Redis + PostgreSQL, faults, stale-read checker
	$(RUN) python -m tests.chaos $(CHAOS_ARGS)

clean-data: ## Delete the local SQLite database (data/): the next `make run` starts again from the ten sample users
	rm -rf data/

# The Compose stack needs a Docker engine and Compose (`docker compose`); nothing else in this Makefile does.
# COMPOSE=docker-compose uses a standalone docker-compose instead of the plugin.
COMPOSE ?= docker compose
TARGET = make $(firstword $(MAKECMDGOALS) up)
COMPOSE_HOWTO = install Docker's Compose plugin (https://docs.docker.com/compose/install/linux/; Debian and Ubuntu: \
the docker-compose-plugin package from Docker's apt repository), or run a standalone Compose v2 binary with \
'$(TARGET) COMPOSE=docker-compose'

# What `make up/ps/logs/down` need, checked first: a missing piece is one message that says how to get it.
compose-check:
	@if ! command -v $(firstword $(COMPOSE)) >/dev/null; then \
		echo "$(TARGET): \`$(firstword $(COMPOSE))\` is not on PATH" >&2; \
		if [ "$(COMPOSE)" = "docker compose" ]; then \
			echo "  install Docker Engine and its Compose plugin: https://docs.docker.com/engine/install/" >&2; \
		else echo "  $(COMPOSE_HOWTO)" >&2; fi; exit 1; fi
	@if ! $(COMPOSE) version >/dev/null 2>&1; then \
		if [ "$(COMPOSE)" = "docker compose" ]; then echo "$(TARGET): this docker has no Compose plugin" \
			"(\`docker compose version\` fails)" >&2; \
		else echo "$(TARGET): \`$(COMPOSE) version\` fails: $$($(COMPOSE) version 2>&1 | head -n 1)" >&2; fi; \
		echo "  $(COMPOSE_HOWTO)" >&2; exit 1; fi
	@if command -v docker >/dev/null && ! reason="$$(docker info --format '{{.ServerVersion}}' 2>&1)"; then \
		echo "$(TARGET): no Docker engine answers: $$(echo "$$reason" | grep -v '^$$' | tail -n 1)" >&2; \
		echo "  start it (e.g. sudo systemctl start docker), or point DOCKER_HOST at one" >&2; exit 1; fi

up: compose-check ## Build the image and start app + Redis + PostgreSQL (compose.yaml), waiting until healthy
	$(COMPOSE) up --build --detach --wait

down: compose-check ## Stop the Compose stack (the PostgreSQL volume is kept; add ARGS=--volumes to drop it)
	$(COMPOSE) down $(ARGS)

logs: compose-check ## Follow the Compose stack's logs
	$(COMPOSE) logs --follow

ps: compose-check ## Show the Compose services and their health
	$(COMPOSE) ps

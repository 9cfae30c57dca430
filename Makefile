# ENSU Documents — every target CI runs is here; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv is found (or installed) at each call by scripts/uv, never when make parses this file.
UV ?= bash $(CURDIR)/scripts/uv
RUN := $(UV) run --locked --no-sync
export ENSU_VAR_DIR ?= var

.PHONY: help setup system-deps services run test lint typecheck pytest bench bench-scale mutation clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

setup: system-deps ## install what is missing: uv, the locked environment, system packages
	@$(UV) sync --locked --compile-bytecode --quiet
	@$(RUN) ensu db upgrade

system-deps: ## apt-get install nginx, chromium, fonts when missing (Debian, as root)
	@bash scripts/system-deps.sh

services: ## start PostgreSQL and Redis when they are not running (for the tests)
	@bash scripts/services.sh

run: export ENSU_MAIL_OUTBOX ?= true
run: setup ## serve the sandbox API (mutual TLS, https://127.0.0.1:8443) and the portal (http://127.0.0.1:8080)
	@$(RUN) ensu pki init
	@$(RUN) ensu consumers ensure-dev
	@$(RUN) ensu staff ensure-dev
	@$(RUN) ensu sandbox generate --if-empty
	@$(RUN) ensu serve

lint: ## ruff (lint, format), bandit (medium and above), pip-audit of uv.lock (skipped offline)
	@$(RUN) ruff check .
	@$(RUN) ruff format --check .
	@# Findings of medium severity or above fail, unless justified inline (# nosec BXXX).
	@# bandit warns of a nosec on a statement spanning lines: that warning only is dropped.
	@$(RUN) bandit --quiet --recursive src --severity-level medium \
		2> >(grep -v "nosec encountered" >&2)
	@bash scripts/audit-deps.sh

typecheck: ## mypy --strict
	@$(RUN) mypy

pytest: ## the whole test suite
	@$(RUN) pytest

test: setup services lint typecheck pytest ## lint, types, the whole suite (what CI runs)

bench: setup ## benchmarks against references measured in the same run
	@$(RUN) python -m bench

bench-scale: setup ## latency and bytes per document of 10k- and 1M-subject stores (10M documents)
	@$(RUN) python -m bench.scale

# `make mutation MODULE=ensu.gateway.checks`: that module's mutants only (the others keep
# their results); MUTATION_JOBS: mutants tested at once; at the lowest CPU priority.
MUTATION_JOBS ?= 1
mutation: setup ## mutation testing (mutmut) of the access chain, perimeter, tokens, journal verification; not in `test`
	@nice -n 19 $(UV) run --locked --group mutation mutmut run --max-children $(MUTATION_JOBS) \
		$(if $(MODULE),'$(MODULE).*')
	@$(UV) run --locked --group mutation python scripts/mutation_score.py

clean: ## remove generated state (var/: database, blobs, development PKI)
	rm -rf var mutants .pytest_cache .mypy_cache .ruff_cache

# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
# The first interpreter that runs and is 3.11 or newer (pyenv shims exist for absent versions).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt when the dependencies change: a fresh clone gets .venv on first use.
STAMP := $(VENV)/.installed

.PHONY: run test lint format lock migrate bench soak fuzz clean sandbox env docs

run: $(STAMP) ## Serve on 127.0.0.1:8000 (embedded Postgres under .data/ unless DATABASE_URL is set)
	$(BIN)/voucher-relay serve

docs: $(STAMP) ## Regenerate docs/configuration.md from the Settings class (a test checks it)
	$(BIN)/python -m app.configuration_page

env: ## Create .env (from .env.example) with a new ops API token and webhook secret; never overwrites
	@$(PYTHON) -m app.envfile

sandbox: $(STAMP) ## The relay, both emulators and a first delivery, in .sandbox/ (Ctrl-C stops all)
	$(BIN)/voucher-relay sandbox $(SANDBOX_FLAGS)

test: lint ## Lint, then the whole test suite against a real (embedded) Postgres
	$(BIN)/pytest

lint: $(STAMP) ## ruff (lint and format check), mypy, hadolint, import contracts (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app migrations tests bench
	$(BIN)/hadolint Dockerfile
	$(BIN)/lint-imports --no-logo

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Benchmarks against same-run baselines (~25 min, 14 GB of disk for scale; BENCH_SCALE=0.1 for a quick one)
	$(BIN)/python -m bench.run

soak: $(STAMP) ## Faults, kills and restarts with 2 APIs and 2 workers (~6 min; SOAK_SCALE=0.1: ~2 min)
	$(BIN)/python -m bench.soak

fuzz: $(STAMP) ## Schemathesis --checks all, 200 examples per operation, on a served relay (FUZZ_EXAMPLES, FUZZ_SEED)
	$(BIN)/python -m bench.fuzz

migrate: $(STAMP) ## Upgrade the database schema to the newest revision
	$(BIN)/voucher-relay migrate

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock
	@test -n "$(PYTHON)" || { echo "voucher-relay needs Python 3.11 or newer: install it, or set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

lock: ## Re-resolve the newest allowed versions into requirements*.lock
	rm -rf /tmp/voucher-relay-lock && $(PYTHON) -m venv /tmp/voucher-relay-lock
	/tmp/voucher-relay-lock/bin/pip install --quiet .
	(echo "# Runtime pins. Regenerate with: make lock"; /tmp/voucher-relay-lock/bin/pip freeze --exclude-editable | grep -v '^voucher-relay') > requirements.lock
	/tmp/voucher-relay-lock/bin/pip install --quiet '.[dev]'
	(echo "# Runtime + dev pins. Regenerate with: make lock"; /tmp/voucher-relay-lock/bin/pip freeze --exclude-editable | grep -v '^voucher-relay') > requirements-dev.lock
	rm -rf /tmp/voucher-relay-lock build *.egg-info

clean: ## Remove the virtualenv and caches (keeps .data/, the embedded database)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

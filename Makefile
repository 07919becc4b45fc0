# Every target bootstraps what it needs: a fresh machine with Python 3.11+ and
# network access to PyPI is enough. The virtual environment is rebuilt only when
# a lock file changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: help dev init test lint format lock synth bench hostile clean

help:
	@echo "make dev     run the service on http://127.0.0.1:8080 (embedded PostgreSQL unless DATABASE_URL is set)"
	@echo "make test    the whole test suite"
	@echo "make lint    ruff + mypy"
	@echo "make init APP=../my-app   detect your FastAPI app, write its app section into deploy.yaml (SPEC=, FORCE=1)"
	@echo "make synth   CloudFormation into cdk.out/, Terraform JSON into cdktf.out/ (STAGE=prod for prod)"
	@echo "make bench   performance figures vs baselines (BENCH_ARGS=--quick for a smoke run)"
	@echo "make hostile races, a sign-up flood, database outages: figures vs goals (HOSTILE_ARGS=--quick)"
	@echo "make lock    re-resolve the lock files after editing a *.in file"

$(STAMP): requirements-dev.txt service/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements-dev.txt
	touch $(STAMP)

# checkov lives apart: it pins old versions of packages the tooling also uses.
$(CHECKOV_STAMP): requirements-checkov.txt $(STAMP)
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip sync --quiet --python $(CHECKOV_VENV)/bin/python --require-hashes requirements-checkov.txt
	touch $(CHECKOV_STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.installed

dev: $(STAMP)
	$(BIN)/python -m devtools.dev

# `python app.py init PATH` in the project's environment: detects the app in APP, writes the
# app section of deploy.yaml (or of SPEC), never replacing one without FORCE=1.
init: $(STAMP)
	@test -n "$(APP)" || { echo "usage: make init APP=path/to/your/app [SPEC=deploy.yaml] [FORCE=1]"; exit 2; }
	$(BIN)/python app.py init "$(APP)" $(if $(SPEC),--spec "$(SPEC)") $(if $(FORCE),--force)

test: $(STAMP) $(CHECKOV_STAMP) node_modules/.installed
	$(BIN)/python -m pytest

# Both clouds through the pinned CLIs, offline and without credentials:
# CloudFormation into cdk.out/, Terraform JSON into cdktf.out/stacks/<stack>/cdk.tf.json.
# STAGE=prod for the prod stacks.
synth: $(STAMP) node_modules/.installed
	npx cdk synth --quiet $(if $(STAGE),-c stage=$(STAGE))
	CHECKPOINT_DISABLE=1 STAGE=$(STAGE) npx cdktf synth

# The performance figures beside their baselines: a table, and bench/results.json (each row
# written as soon as it is measured; a step that fails is a failed row and the exit status 1).
# Its prerequisites are those of what it runs: the synth (node_modules) and the test suite it
# times (.venv-checkov), so it works from a fresh clone.
bench: $(STAMP) $(CHECKOV_STAMP) node_modules/.installed
	PYTHONPATH=service:. $(BIN)/python -m bench.run $(BENCH_ARGS)

# The service under hostile load (its own PostgreSQL and server, about 3 minutes; not part of
# `make test`): a table of figures against goals, and bench/hostile-results.json. Fails when a
# goal is missed.
hostile: $(STAMP)
	PYTHONPATH=service:. $(BIN)/python -m bench.hostile $(HOSTILE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"; }
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		service/requirements.in -o service/requirements.txt
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		requirements-dev.in -o requirements-dev.txt
	$(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
		requirements-checkov.in -o requirements-checkov.txt

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules cdk.out cdktf.out .pytest_cache .mypy_cache .ruff_cache

# dpa-mock: `make serve` installs and runs the emulator; `make test` installs and runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
# pytest-xdist workers for `make unit` (auto: one per core, and one more for the tests that mostly wait: conftest.py);
# `make unit PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= auto
# Some machines set PYTHONDONTWRITEBYTECODE=1: then every one of the suite's ~100 subprocesses (servers, kit
# runs) compiles the project and pytest's assertion rewrites from source again, about 2 s of CPU each.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install serve test static unit kit-http browser-deps lint bench clean

$(BIN)/dpa-mock: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

install: $(BIN)/dpa-mock node_modules/.package-lock.json

serve: $(BIN)/dpa-mock
	$(BIN)/dpa-mock serve $(ARGS)

# Debian's chromium + chromedriver, for the dashboard's browser test only.
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null; }

# Step 0: lint, format and types (ruff.toml, mypy.ini), seconds, before the long steps (`ruff format .` fixes the format).
static: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Step 1: the emulator's own tests, the spec lint, the contract kit in-process and its self-tests, on every core
# (conftest.py keeps the tests that share state on one worker).
unit: install browser-deps
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

# Step 2: the contract kit over real HTTP against `dpa-mock serve`.
kit-http: install
	PATH="$(abspath $(BIN)):$$PATH" scripts/kit-over-http.sh

test: static unit kit-http

lint: install
	npm run --silent lint:openapi

bench: install
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) node_modules reports .pytest_cache .hypothesis .mypy_cache .ruff_cache

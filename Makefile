# Two commands on a fresh machine: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install browser run test lint typecheck unit bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## Start the whole suite locally on an embedded moto AWS (PORT=8000, MOTO_PORT=5000 by default).
run: install
	$(BIN)/python -m chalicelib.local

## Debian's chromium for the browser tests, installed with apt-get when missing (as root, or through sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the browser tests..."; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

## ruff, mypy and every test (the browser ones included); exits non-zero on any failure. The API, unit
## and contract tests run on both cores (each worker has its own moto and ephemeral ports); the browser
## tests, one Chromium at a time, after them.
test: install browser lint typecheck
	$(BIN)/python -m pytest -q -n 2 tests/unit tests/integration tests/contract
	$(BIN)/python -m pytest -q tests/browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

## Figures, not assertions: prints a table and writes bench/results.json.
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

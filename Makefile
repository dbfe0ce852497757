# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck services browser bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# setup.py builds the C extension: a changed source must be rebuilt into the venv's checkout
$(STAMP): $(BIN)/python pyproject.toml setup.py $(wildcard detectors/*.c)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# `make run CONFIG=config/mine.yaml PORT=8081` runs another config or port
CONFIG ?= config/default.yaml
PORT ?=

run: $(STAMP)
	$(BIN)/crisiswatch run --config $(CONFIG) $(if $(PORT),--port $(PORT))

services:
	bash scripts/ensure-services.sh

browser:
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-prometheus.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) services browser lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var build dist *.egg-info

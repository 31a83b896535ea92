# The two commands of the README:
#   make pipeline   the main job (dvc repro: data -> train -> distill -> compose -> register
#                   -> check), then its report; fails if the gate fails
#   make test       the test suite
# Both create .venv on a fresh machine (torch pinned first) and reuse it after.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: pipeline test lint typecheck clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

pipeline: $(STAMP)
	registry restore-tags
	dvc repro
	$(BIN)/python pipelines/report.py --show

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check registry tests pipelines benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean-venv:
	rm -rf $(VENV)

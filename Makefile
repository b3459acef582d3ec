# The two front-door commands: `make run` and `make test`. Both build .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ./data

.PHONY: run test lint bench bench-quick bench-ingest screenshots clean chaos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p $(DATA)
	$(BIN)/chute $(DATA)

# Two test processes (pytest-xdist), one test file each at a time: most tests wait on a daemon or a
# console, so two overlap well even on two cores. PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Type-checks core/ and tui/ under their package names (chute.core, chute.tui) through links;
# vulture: no dead code in core/ or tui/ (settings in pyproject.toml, reasons in vulture_whitelist.py).
lint: $(STAMP)
	$(BIN)/ruff check core tui tests bench examples
	$(BIN)/vulture
	mkdir -p .mypy_path/chute && ln -sfn ../../core .mypy_path/chute/core && ln -sfn ../../tui .mypy_path/chute/tui
	MYPYPATH=.mypy_path $(BIN)/mypy -p chute.core -p chute.tui

# Not part of `make test`: >= 200 SIGKILLs at named steps, endpoint kills, disk full, fuzz (tests/chaos.py).
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

# Every issue-12 workload beside ClickHouse's own ingestion (bench/suite.py); BENCH_ARGS=--big adds 16M rows.
bench: $(STAMP)
	$(BIN)/python -m bench.suite $(BENCH_ARGS)
	$(BIN)/python -m bench.latency

bench-quick: $(STAMP)
	$(BIN)/python -m bench.suite --quick $(BENCH_ARGS)

# The original like-for-like load timing of one 1M-row CSV (bench/ingest.py).
bench-ingest: $(STAMP)
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)

screenshots: $(STAMP)
	$(BIN)/python -m chute.tui.demo --screenshots screenshots/
	CHUTE_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_serve.py -k browser

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .mypy_path

# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test check bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/llm-router demo

test: $(INSTALLED)
	$(BIN)/python -m pytest -q

check: $(INSTALLED)
	$(BIN)/ruff check router providers tests bench
	$(BIN)/mypy router providers

clean:
	rm -rf $(VENV) build *.egg-info

# Side-by-side benchmark (issue 9), a few minutes: writes bench/RESULTS.md and bench/latency.png.
# Longer: make bench BENCH_ARGS="--duration 10 --soak 600"; on a shared machine add --wait-quiet 60.
bench: $(INSTALLED)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8080
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test test-env check bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(INSTALLED)

# make demo PORT=9000 HOST=0.0.0.0; DEMO_API_KEY and ROUTER_ADMIN_KEY keep the keys stable.
demo: $(INSTALLED)
	$(BIN)/llm-router demo --host '$(HOST)' --port '$(PORT)'

# Redis on 127.0.0.1:6379 and promtool/prometheus, installed (apt-get) or started when missing.
test-env:
	scripts/setup-test-env

# pytest exits 5 when no test ran, so an empty run fails too.
test: $(INSTALLED) test-env
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

# deepsky: the two commands of the README's quick start, and a few helpers.
#   make demo   – install what is needed, build, and run the demo on the bundled data
#   make test   – install what is needed, build, and run the whole test suite
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
# The bundled HDF5 needs CMake >= 3.26; .ci/setup puts one in the venv.
export PATH := $(VENV)/bin:$(PATH)
export DEEPSKY_PYTHON := $(VENV)/bin/python
CARGO ?= cargo

.PHONY: setup build demo test data bench fmt notebooks

setup:
	@bash .ci/setup

# One build serves demo and tests: the dev profile compiles every crate at opt-level 3
# (Cargo.toml), so there is no second, release build to wait for.
build: setup
	$(CARGO) build --locked

demo: build
	@bash scripts/demo.sh

# One numeric thread per test process: the test harness already runs tests (and the CLI
# processes they start) in parallel on every core, and candle's CPU pool spin-waits, so
# oversubscribed cores spend most of their time spinning (measured 3.5x slower).
test: setup
	RAYON_NUM_THREADS=1 $(CARGO) test --workspace --locked

data: build
	@bash data/regenerate.sh

# Execute every notebook in notebooks/ headless against this build (as tests/notebooks.rs does);
# their outputs go to notebooks/out/.
notebooks: build
	DEEPSKY_BIN=$(CURDIR)/target/debug/deepsky $(VENV)/bin/python notebooks/run_notebook.py notebooks/*.ipynb

fmt:
	$(CARGO) fmt --all

# Two commands do all the set-up: `make demo` (install + run the demo) and `make test`.
# Both are idempotent and reuse the virtualenv in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.w2vu-installed
DEV_STAMP := $(VENV)/.w2vu-dev-installed
CORES ?= 2

.PHONY: setup setup-dev demo test lint bench clean

# What the pipeline needs (make demo).
setup: $(STAMP)

# What the tests need on top: pytest, ruff, the Slurm plugin; chromium, slurm and munge.
setup-dev: $(DEV_STAMP)

# torch goes in first, pinned: any other spec pulls gigabytes of CUDA packages.
$(STAMP): pyproject.toml scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	bash scripts/install-system-packages.sh --tests
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(DEV_STAMP)

demo: setup
	$(BIN)/snakemake --cores $(CORES)

lint: setup-dev
	$(BIN)/ruff check w2vu tests bench devkit
	$(BIN)/snakemake --lint

test: setup-dev
	$(BIN)/ruff check w2vu tests bench devkit
	$(BIN)/python -m pytest

bench: setup-dev
	$(BIN)/python bench/audio.py
	$(BIN)/python bench/dag.py
	$(BIN)/python bench/text.py
	$(BIN)/python bench/text_lm.py
	$(BIN)/python bench/features.py
	$(BIN)/python bench/features_cluster.py

clean:
	rm -rf results logs benchmarks .snakemake

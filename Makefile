# eilab — `make help` lists the targets. Everything installs into .venv on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# These machines hold the CPU build of torch 2.13.0 on local disk; a bare `torch` would pull
# a multi-GB CUDA build. Override for a GPU machine, e.g. `make install TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: help install data slurm test lint format bench bench-scaling gpu-check demo reproduce \
	reproduce-gpu clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv with torch and eilab (idempotent)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[dev,astra]'
	touch $(STAMP)

# EILAB_REQUIRE_DATA=1 (set by .ci/run) makes a head CT that cannot be had an error, not a skip.
data: install ## Get the real head CT (Debian invesalius-examples) where possible
	$(BIN)/python -m eilab.data.prepare $(if $(EILAB_REQUIRE_DATA),--require)

# The `cluster` tests start a single-node Slurm (tools/local_slurm.sh); they skip, saying why,
# where it cannot start (not root, or the packages missing).
slurm: ## Install Slurm and munge for the cluster tests (apt-get, as root on Debian)
	bash tools/local_slurm.sh --install

# Test processes (pytest-xdist): one per core; `make test TEST_JOBS=0` runs in this process.
TEST_JOBS ?= auto

test: install lint data slurm ## Lint, get the data and Slurm the tests use, run the test suite (the CI gate)
	$(BIN)/pytest -n $(TEST_JOBS) --dist loadgroup

lint: install ## ruff: lint and formatting check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Operators at 128² (ops); the EI and REI training steps beside deepinv's at 64² (train);
# eilab's SURE and REQ values beside deepinv's (sure).
bench: install ## Time eilab against scikit-image and deepinv (separate .bench-venv)
	bash tools/setup_bench_env.sh
	.bench-venv/bin/python -m eilab.bench --suite ops
	.bench-venv/bin/python -m eilab.bench --suite train model=unet_small img_size=64 --strategies ei rei
	.bench-venv/bin/python -m eilab.bench --suite sure

bench-scaling: install ## Time and peak memory of each CT backend vs N and views (~15 min)
	bash tools/setup_bench_env.sh
	nice -n 10 .bench-venv/bin/python -m eilab.bench.scaling --out-dir experiments/bench

# Needs no install: runs from src/ with .venv's python if there is one, else $(PYTHON); on a machine
# without network, bring the wheels tools/gpu_wheels.sh lists. Results: outputs/gpu_check/<time>/.
gpu-check: ## On a GPU: CUDA tests, step bench (fast, packed), short CT runs, CUDA scaling (~10 min)
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bash tools/gpu_check.sh

demo: install data ## Train MC, EI and Sup on real CT and photographs; print the tables
	$(BIN)/python -m eilab.demo

reproduce: install data ## Table 1 and Fig. 3, then the noisy-measurement study, at CPU scale
	$(BIN)/python -m eilab.reproduce --publish experiments/table1
	$(BIN)/python -m eilab.reproduce_rei --tasks ct ct64 inpainting_0.1 cs_0.2 --publish experiments/rei

# One GPU window at a time: make reproduce-gpu STRATEGIES=ei MAX_MINUTES=12 ARGS=fast_step=true
STRATEGIES ?= mc ei ei_adv sup ei_sup
reproduce-gpu: install data ## Table 1 CT at the paper's scale on a GPU, into experiments/table1_gpu
	$(BIN)/python -m eilab.reproduce_gpu $(ARGS) $(if $(MAX_MINUTES),--max-minutes $(MAX_MINUTES)) \
		--strategies $(STRATEGIES)

clean: ## Remove build caches (keeps .venv and outputs/)
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info

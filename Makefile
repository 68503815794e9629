# musicbench — `make help` lists the targets. `make run` and `make test` set up whatever is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHORALES_ROOT ?= data/chorales
CHORALES_TRACKS ?= 32
CHORALES_SECONDS ?= 30
PYTEST_ARGS ?=

.PHONY: help install sysdeps data run test bench lint format clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

sysdeps: ## Check/install system packages (ffmpeg + ffprobe, needed by museval/musdb/stempeg)
	@if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "[musicbench] installing ffmpeg (Debian package) ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else \
		echo "[musicbench] ffmpeg and ffprobe must be on PATH (museval/musdb import them; MUSDB18 .stem.mp4 needs them)."; \
		echo "             Install them, e.g. 'sudo apt-get install ffmpeg' (Debian/Ubuntu), 'conda install -c conda-forge ffmpeg' or 'brew install ffmpeg'."; \
		exit 1; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@# tinysoundfont's metadata requires pyaudio (live playback only; it does not build here): skip its deps.
	$(PY) -m pip install -q --no-deps "tinysoundfont>=0.3.7"
	@touch $(STAMP)

install: sysdeps $(STAMP) ## Create .venv and install musicbench with dev extras

data: install ## Generate the embedded chorale dataset (CHORALES_TRACKS, CHORALES_SECONDS)
	$(VENV)/bin/mb-data chorales --root $(CHORALES_ROOT) --num-tracks $(CHORALES_TRACKS) --max-seconds $(CHORALES_SECONDS)

run: data ## Main job: train the U-Net separator on the chorales, evaluate on the test split, print the table
	$(VENV)/bin/mb-train experiment=chorales_unet paths.chorales_root=$(CHORALES_ROOT)

test: install ## Run the whole test suite
	@# One BLAS/OpenMP thread per xdist worker: two workers already fill the 2 cores, more threads thrash.
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: install ## Benchmarks: ours vs the reference implementations side by side (BENCH_ARGS="--quick --only bsseval")
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: install ## Lint with ruff
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: install ## Auto-format with ruff
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean: ## Remove the venv, caches and run outputs (keeps data/)
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# musicbench — `make help` lists the targets. `make run` and `make test` set up whatever is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# Use this Python (no downloads) and make the venv the project environment, wherever uv is called from.
UV_ENV := UV_PYTHON=$(PYTHON) UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=$(VENV)
STAMP := $(VENV)/.installed
# The doctor reports a broken torch/torchaudio pair instead of refusing to import.
DOCTOR := MUSICBENCH_SKIP_TORCH_CHECK=1 $(PY) -m musicbench.doctor
CHORALES_ROOT ?= data/chorales
CHORALES_TRACKS ?= 32
CHORALES_SECONDS ?= 30
CHORALES_HIRES_ROOT ?= data/chorales_88k
CADENZA_ROOT ?= data/cadenza_chorales
PYTEST_ARGS ?=
TEST_WORKERS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)

.PHONY: help install lock doctor sysdeps data data-hires run cadenza studies study-separation study-restoration study-hires test bench bench-gpu lint format clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

sysdeps: ## Check/install system packages (ffmpeg + ffprobe, needed by museval/musdb/stempeg)
	@if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "[musicbench] installing ffmpeg (Debian package)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	else \
		echo "[musicbench] ffmpeg and ffprobe must be on PATH (museval/musdb import them; MUSDB18 .stem.mp4 needs them)."; \
		echo "             Install them, e.g. 'sudo apt-get install ffmpeg' (Debian/Ubuntu), 'conda install -c conda-forge ffmpeg' or 'brew install ffmpeg'."; \
		exit 1; \
	fi

# The lock decides versions: `uv sync --locked` installs exactly uv.lock (every package, with hashes) and
# fails when pyproject.toml and uv.lock disagree. uv itself is bootstrapped at the version locked there.
# --compile-bytecode writes every package's .pyc once: where PYTHONDONTWRITEBYTECODE is set (CI images
# often do) each process would otherwise compile torch/lightning/sympy from source again, ~6 s of CPU per
# `import pytorch_lightning` (10.4 s -> 4.3 s), paid by every CLI run, test subprocess and DataLoader spawn.
LOCKED_UV = $(shell awk '/^name = "uv"$$/ {getline; gsub(/"/, "", $$3); print $$3}' uv.lock)
BOOTSTRAP_UV = if [ ! -x $(PY) ]; then \
		echo "[musicbench] creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV) || exit 1; \
	fi; \
	if [ "$$($(UV) --version 2>/dev/null | cut -d' ' -f2)" != "$(LOCKED_UV)" ]; then \
		echo "[musicbench] installing uv $(LOCKED_UV) (the version in uv.lock)"; \
		set -o pipefail; $(PY) -m pip install -q --disable-pip-version-check "uv==$(LOCKED_UV)" 2>&1 \
			| { grep -v "^WARNING: Location" || true; } || exit 1; \
	fi

$(STAMP): pyproject.toml uv.lock
	@SECONDS=0; $(BOOTSTRAP_UV); \
	echo "[musicbench] installing the locked environment: uv sync --locked (first time: a few minutes)"; \
	$(UV_ENV) $(UV) sync --locked --compile-bytecode --quiet || { \
		echo "[musicbench] uv sync --locked failed. If you edited pyproject.toml, run 'make lock' and commit uv.lock."; exit 1; }; \
	touch $(STAMP); \
	echo "[musicbench] installed in $$SECONDS s: $$($(DOCTOR) --short)"

install: sysdeps $(STAMP) ## Create .venv with exactly the versions in uv.lock (uv sync --locked)

lock: ## Re-resolve uv.lock from pyproject.toml (upgrade one package: make lock LOCK_ARGS="--upgrade-package numba")
	@$(BOOTSTRAP_UV)
	$(UV_ENV) $(UV) lock $(LOCK_ARGS)

doctor: install ## Versions of python, torch, torchaudio, lightning, hydra, numba, ffmpeg; the device; optional features
	@$(DOCTOR)

data: install ## Generate the embedded chorale dataset (CHORALES_TRACKS, CHORALES_SECONDS)
	$(VENV)/bin/mb-data chorales --root $(CHORALES_ROOT) --num-tracks $(CHORALES_TRACKS) --max-seconds $(CHORALES_SECONDS)

data-hires: install ## The chorales rendered at 88.2 kHz for hi-res restoration (16 x 12 s)
	$(VENV)/bin/mb-data chorales --root $(CHORALES_HIRES_ROOT) --num-tracks 16 --max-seconds 12 --sample-rate 88200

run: data ## Main job: train the U-Net separator on the chorales, evaluate on the test split, print the table
	$(VENV)/bin/mb-train experiment=chorales_unet paths.chorales_root=$(CHORALES_ROOT)

# The U-Net is make run's (its run folder is found again and nothing is retrained when it is there).
cadenza: data ## Embedded Cadenza recipe: rebalance the chorales for listeners with hearing loss; oracle, mixture, U-Net
	$(VENV)/bin/mb-data cadenza --root $(CADENZA_ROOT) --chorales-root $(CHORALES_ROOT) --segment-seconds 6 --listeners-per-scene 2
	$(VENV)/bin/mb-train experiment=chorales_unet paths.chorales_root=$(CHORALES_ROOT) test=false
	$(VENV)/bin/mb-cadenza pipeline=chorales_rebalance paths.cadenza_root=$(CADENZA_ROOT) threads=2 \
		checkpoint=$$(ls -td outputs/train/chorales_unet/*/ | head -1)

# Studies: train and evaluate every run (run folders under outputs/studies/<study>, found again and not
# retrained when they are there), then the study's table, plot and committed copy of the results.
STUDY_OUT := outputs/studies
SEP_STUDY := experiments/separation_chorales
RESTORE_STUDY := experiments/restoration_mp3_32k
# The restoration table's rows: each model once (the GAN's four samples score alike: one stands for them).
RESTORE_ROWS := restore_lstm_mp3_32k restore_gan_mp3_32k_deterministic/mean restore_gan_mp3_32k/mean \
	restore_gan_mp3_32k/best_of_k restore_gan_mp3_32k/sample_0 restore_gan_mp3_32k_fullband/best_of_k \
	restore_gan_mp3_32k_fullband/sample_0

study-separation: data ## experiments/separation_chorales: U-Net vs Open-Unmix, 3 seeds each (~50 min on 2 CPU cores)
	MB_OUTPUT_ROOT=$(STUDY_OUT)/separation_chorales $(VENV)/bin/mb-train -m \
		experiment=chorales_unet,chorales_umx seed=1,2,3 paths.chorales_root=$(CHORALES_ROOT)
	rm -rf $(SEP_STUDY)/runs
	$(VENV)/bin/mb-leaderboard $(STUDY_OUT)/separation_chorales --export-runs $(SEP_STUDY)/runs
	$(VENV)/bin/mb-leaderboard $(SEP_STUDY)/runs --out $(SEP_STUDY)/results.md --plot $(SEP_STUDY)/sdr.png
	$(VENV)/bin/mb-leaderboard $(SEP_STUDY)/runs --metric all --out $(SEP_STUDY)/results_all.csv

study-restoration: data ## experiments/restoration_mp3_32k: MP3 vs BLSTM vs GAN (deterministic, stochastic x2) (~30 min)
	MB_OUTPUT_ROOT=$(STUDY_OUT)/restoration_mp3_32k $(VENV)/bin/mb-train -m \
		experiment=restore_lstm_mp3_32k,restore_gan_mp3_32k_deterministic,restore_gan_mp3_32k,restore_gan_mp3_32k_fullband \
		paths.chorales_root=$(CHORALES_ROOT)
	rm -rf $(RESTORE_STUDY)/runs
	$(VENV)/bin/mb-leaderboard $(STUDY_OUT)/restoration_mp3_32k --export-runs $(RESTORE_STUDY)/runs
	$(VENV)/bin/mb-leaderboard $(RESTORE_STUDY)/runs --metric lsd lsd_high snr --system $(RESTORE_ROWS) \
		--out $(RESTORE_STUDY)/results.md --plot $(RESTORE_STUDY)/lsd.png --diversity-plot $(RESTORE_STUDY)/diversity.png
	$(VENV)/bin/mb-leaderboard $(RESTORE_STUDY)/runs --metric all --out $(RESTORE_STUDY)/results_all.csv

HIRES_STUDY := experiments/restoration_hires_88k
HIRES_ROWS := restore_hires_lstm_88k restore_hires_gan_88k/mean restore_hires_gan_88k/best_of_k \
	restore_hires_gan_88k/sample_0

study-hires: data-hires ## experiments/restoration_hires_88k: 128 kbit/s MP3 at 44.1 kHz -> 88.2 kHz, BLSTM vs GAN (~15 min)
	MB_OUTPUT_ROOT=$(STUDY_OUT)/restoration_hires_88k $(VENV)/bin/mb-train -m \
		experiment=restore_hires_lstm_88k,restore_hires_gan_88k paths.chorales_hires_root=$(CHORALES_HIRES_ROOT)
	rm -rf $(HIRES_STUDY)/runs
	$(VENV)/bin/mb-leaderboard $(STUDY_OUT)/restoration_hires_88k --export-runs $(HIRES_STUDY)/runs
	$(VENV)/bin/mb-leaderboard $(HIRES_STUDY)/runs --metric lsd_ext lsd_missing lsd snr --system $(HIRES_ROWS) \
		--out $(HIRES_STUDY)/results.md --plot $(HIRES_STUDY)/lsd_ext.png --diversity-plot $(HIRES_STUDY)/diversity.png
	$(VENV)/bin/mb-leaderboard $(HIRES_STUDY)/runs --metric all --out $(HIRES_STUDY)/results_all.csv

studies: study-separation study-restoration study-hires ## Every study in experiments/

test: install ## Run the whole test suite (TEST_WORKERS parallel pytest workers, default: one per core)
	@# One BLAS/OpenMP thread per xdist worker: the workers already fill the cores, more threads thrash.
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

bench: install ## Benchmarks: ours vs the reference implementations side by side (BENCH_ARGS="--quick --only bsseval")
	$(PY) -m benchmarks $(BENCH_ARGS)

bench-gpu: install ## One-shot GPU benchmark, < 5 min (CPU figures without CUDA; BENCH_GPU_ARGS="--size tiny")
	$(PY) -m benchmarks.gpu $(BENCH_GPU_ARGS)

lint: install ## Lint with ruff, type-check with mypy (strict on metrics/, hearing/, audio/)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

format: install ## Auto-format with ruff
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean: ## Remove the venv, caches and run outputs (keeps data/)
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache .mypy_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

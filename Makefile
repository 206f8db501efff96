# balancedtorch: two commands for a fresh machine.
#   make demo   set up .venv from nothing, build the extension, run the demo
#               (plain vs balanced training on long-tailed digits; DEMO_ARGS=...)
#   make demo-seg   the same set-up, then the segmentation demo (traffic lights
#               at 800:1, plain vs balanced; DEMO_ARGS=...)
#   make test   the same set-up, then the tests and the docstring examples
#               (make test-fast: the quick tier)
#   make bench  the same set-up, then the benchmarks (pytest-benchmark)
#   make lint   ruff and clang-format checks (make format applies them)
#   make docs   the same set-up, then the documentation site (docs/_build/html)
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

export MAX_JOBS ?= 2
export PYTHONDONTWRITEBYTECODE := 1

SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh')

STAMP_VENV    := $(VENV)/.stamp-venv
STAMP_TORCH   := $(VENV)/.stamp-torch
STAMP_INSTALL := $(VENV)/.stamp-install
STAMP_DOCS    := $(VENV)/.stamp-docs

.PHONY: install demo demo-seg test test-fast bench check-build peer-tests sdist wheel test-min-torch test-newest-torch lint format docs clean

install: $(STAMP_INSTALL)

$(STAMP_VENV):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel ninja numpy
	touch $@

# Plain `pip install torch`: on this machine it resolves to the CUDA build from
# the local mirror, so the CUDA kernels compile even without a GPU.
$(STAMP_TORCH): $(STAMP_VENV)
	$(PIP) install --quiet torch
	touch $@

# Editable install against the torch above (no build isolation). setup.py keeps
# its ninja build folder in build/, so a rerun recompiles only changed sources.
$(STAMP_INSTALL): $(STAMP_TORCH) pyproject.toml setup.py $(SOURCES)
	time $(PIP) install --no-build-isolation -e ".[dev]"
	touch $@

# Where a CUDA torch and nvcc exist, the CUDA kernels must have been compiled.
check-build: install
	$(PY) -c 'import shutil, os, torch, balancedtorch as bt; \
	info = bt.build_info(); print("build_info:", info); \
	want = torch.version.cuda is not None and (shutil.which("nvcc") or os.environ.get("CUDA_HOME")) \
	       and os.environ.get("BALANCEDTORCH_USE_CUDA", "auto") != "0"; \
	assert info["cuda_compiled"] or not want, "CUDA torch and nvcc are present but the CUDA kernels were not compiled"'

DEMO_ARGS ?=
demo: install
	$(PY) -m balancedtorch demo $(DEMO_ARGS)

demo-seg: install
	$(PY) -m balancedtorch demo --task segmentation $(DEMO_ARGS)

# MONAI's own loss tests for tests/losses/test_monai_suite.py: the last MONAI source
# distribution on PyPI that ships its tests (1.5.2), hash-checked; only its
# tests/losses files are extracted. Offline, the runner skips (the step warns).
MONAI_TESTS_VERSION := 1.5.2
MONAI_TESTS_URL     := https://files.pythonhosted.org/packages/db/26/cb4a67d7ab99fa848cf9998d9159a2d368b2dacc6f94b983a4ab36cd9005/monai-1.5.2.tar.gz
MONAI_TESTS_SHA256  := 11cba5bfaad85bbb7e95479071769a0e56f1d515646f6ee203f6d475889d3b25
MONAI_TESTS_DIR     := build/peer-tests/monai-$(MONAI_TESTS_VERSION)/tests/losses

peer-tests: $(MONAI_TESTS_DIR)/test_dice_loss.py

$(MONAI_TESTS_DIR)/test_dice_loss.py:
	mkdir -p build/peer-tests
	@if curl -fsSL --retry 3 -o build/peer-tests/monai.tar.gz "$(MONAI_TESTS_URL)" \
	    && echo "$(MONAI_TESTS_SHA256)  build/peer-tests/monai.tar.gz" | sha256sum -c --quiet; then \
	    tar xzf build/peer-tests/monai.tar.gz -C build/peer-tests --wildcards 'monai-$(MONAI_TESTS_VERSION)/tests/losses/test_*.py'; \
	    rm -f build/peer-tests/monai.tar.gz; \
	else echo "warning: MONAI's test files could not be fetched; tests/losses/test_monai_suite.py will skip"; fi

# Every reference library of the dev extra must be importable here: a missing one
# fails its tests instead of skipping them (BT_REQUIRE_REFERENCES, tests/conftest.py).
# Then every docstring example of the package (pyproject.toml's doctest_optionflags);
# the README's and the docs' code blocks run in tests/docs/test_code_blocks.py.
test: install peer-tests
	BT_REQUIRE_REFERENCES=1 BALANCEDTORCH_REQUIRE_PEER_TESTS=1 $(PY) -m pytest tests
	$(PY) -m pytest --doctest-modules balancedtorch
	$(MAKE) --no-print-directory check-build

# Everyday work: no `slow`, no `distributed` test (pyproject.toml's markers).
test-fast: install
	$(PY) -m pytest tests -q -m "not slow and not distributed"

bench: install
	mkdir -p .benchmarks
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-min-rounds=10 --benchmark-columns=min,median,mean,stddev,rounds \
	    --benchmark-sort=name --benchmark-json=.benchmarks/latest.json
	$(PY) benchmarks/ratios.py .benchmarks/latest.json

# The documentation: the `docs` extra of pyproject.toml into .venv (read from the
# installed metadata, so the extension is not rebuilt for it), then Sphinx with
# warnings as errors. The gallery scripts run during the build; the API pages,
# the raw-op page and the benchmarks summary are generated (docs/_ext/).
$(STAMP_DOCS): $(STAMP_INSTALL) pyproject.toml
	$(PY) docs/_ext/docs_requirements.py > $(VENV)/docs-requirements.txt
	$(PIP) install --quiet -r $(VENV)/docs-requirements.txt
	touch $@

docs: $(STAMP_DOCS)
	rm -rf docs/_build/html docs/auto_examples docs/sg_execution_times.rst  # a full build: -W sees every warning
	time $(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

# Python: ruff (lint + format); C++/CUDA: clang-format (.clang-format). Both are
# pinned in the dev extra, so every machine formats alike.
CXX_SOURCES = $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

# Distributions: the sdist carries every source (MANIFEST.in); the wheel is
# compiled against the torch in .venv and pins its release line.
sdist: install
	$(PY) setup.py -q sdist --dist-dir dist

wheel: install
	$(PIP) wheel --no-build-isolation --no-deps -w dist .

# The declared torch range, proven: a CPU-only build of a copy of this tree
# against one torch release in its own venv, then the core tests. MIN_TORCH
# is the oldest supported release (setup.py's MIN_TORCH, README); the newest
# is whatever the package index offers today (PIP_CONFIG_FILE=/dev/null: past
# a machine's pip configuration that caps torch).
MIN_TORCH       ?= 2.4.1
MIN_TORCHVISION ?= 0.19.1
CORE_TESTS   := tests/packaging/test_build.py tests/ops/test_class_counts.py tests/ops/test_knn.py \
                tests/losses/test_class_weights.py tests/losses/test_losses.py tests/losses/test_ohem.py \
                tests/losses/test_region_losses.py tests/data/test_samplers.py tests/augment/test_augment.py \
                tests/augment/test_crop_focus.py tests/metrics/test_metrics.py tests/quality/test_novelty.py \
                tests/quality/test_quality.py tests/api/test_input_checks.py \
                tests/losses/test_longtail_losses.py tests/losses/test_seesaw_loss.py tests/augment/test_mix.py
TORCH_VENV_DEPS := 'setuptools>=77' wheel ninja pytest hypothesis scikit-learn scipy

define torch_line_test
	@start=$$(date +%s); \
	rm -rf build/$(1)/src && mkdir -p build/$(1)/src && \
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t build/$(1)/src && \
	{ test -x build/$(1)/venv/bin/python || $(PYTHON) -m venv build/$(1)/venv; } && \
	$(3) build/$(1)/venv/bin/python -m pip --disable-pip-version-check install --quiet $(2) $(TORCH_VENV_DEPS) && \
	cd build/$(1)/src && \
	BALANCEDTORCH_USE_CUDA=0 ../venv/bin/python -m pip --disable-pip-version-check install --quiet --no-build-isolation --no-deps -e . && \
	../venv/bin/python -c 'import torch, balancedtorch as bt; print("torch", torch.__version__, bt.build_info())' && \
	BALANCEDTORCH_USE_CUDA=0 ../venv/bin/python -m pytest -q -p no:cacheprovider $(CORE_TESTS) && \
	echo "$(1): passed in $$(( $$(date +%s) - start )) s"
endef

test-min-torch:
	$(call torch_line_test,min-torch,torch==$(MIN_TORCH) torchvision==$(MIN_TORCHVISION) 'numpy<2')

test-newest-torch:
	$(call torch_line_test,newest-torch,--upgrade torch torchvision numpy,PIP_CONFIG_FILE=/dev/null)

clean:
	rm -rf build dist docs/_build docs/api docs/auto_examples docs/_generated balancedtorch/_C*.so balancedtorch/_build_config.py *.egg-info .pytest_cache .benchmarks demo_out demo_seg_out demo_loop_out

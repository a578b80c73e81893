# Two commands: `make demo` (the main job) and `make test` (the tests).
# Each builds `.venv/` on first use from constraints.txt; later runs rebuild nothing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DEPS_STAMP := $(VENV)/.deps-installed
PKG_STAMP := $(VENV)/.pkg-installed
# mmcv 2.1.0 compiles its C++ ops from source (~7 min on 2 cores, cached by pip afterwards).
MAX_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: venv test test-oldest demo data benchmark clean-venv

venv: $(PKG_STAMP)

$(DEPS_STAMP): constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt setuptools wheel
	$(PIP) install -q -c constraints.txt torch numpy
	$(PIP) install -q -c constraints.txt addict packaging pillow pyyaml yapf opencv-python mmengine
	MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(PIP) install --no-build-isolation -c constraints.txt mmcv
	$(PIP) install -q -c constraints.txt mmsegmentation mmdet ftfy regex pytest matplotlib scipy
	touch $@

$(PKG_STAMP): $(DEPS_STAMP) setup.cfg pyproject.toml
	$(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

test: $(PKG_STAMP)
	$(PY) -m pytest tests

demo: $(PKG_STAMP)
	$(PY) -m qkv_plugins.study.demo --configs configs/qkv_study $(DEMO_ARGS)

# The embedded dataset alone (make demo generates it when needed).
data: $(PKG_STAMP)
	$(PY) tools/make_dataset.py

# Layer benchmark on this machine (CPU, or the GPU when there is one).
benchmark: $(PKG_STAMP)
	$(PY) tools/benchmark_layers.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)

# The lowest supported stack (constraints-oldest.txt) in .venv-oldest/: run
# by hand, not in CI; the log goes to benchmarks/test-oldest.log.
OLDEST_PYTHON ?= $(shell pyenv prefix 3.8 2>/dev/null || echo /usr)/bin/python3.8
OLD_VENV := .venv-oldest
OLD_PY := $(OLD_VENV)/bin/python
OLD_PIP := $(OLD_PY) -m pip --disable-pip-version-check
OLD_STAMP := $(OLD_VENV)/.deps-installed

$(OLD_STAMP): constraints-oldest.txt
	test -x $(OLD_PY) || $(OLDEST_PYTHON) -m venv $(OLD_VENV)
	$(OLD_PIP) install -q -c constraints-oldest.txt setuptools wheel
	$(OLD_PIP) install -q -c constraints-oldest.txt torch numpy
	$(OLD_PIP) install -q -c constraints-oldest.txt addict packaging pillow pyyaml yapf opencv-python mmengine
	MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(OLD_PIP) install --no-build-isolation -c constraints-oldest.txt mmcv
	$(OLD_PIP) install -q -c constraints-oldest.txt mmsegmentation mmdet ftfy regex pytest matplotlib scipy
	touch $@

test-oldest: $(OLD_STAMP)
	$(OLD_PIP) install -q --no-build-isolation --no-deps -e .
	mkdir -p benchmarks
	set -o pipefail; start=$$(date +%s); \
	$(OLD_PY) -m pytest tests 2>&1 | tee benchmarks/test-oldest.log; \
	status=$$?; echo "[test-oldest] $$($(OLD_PY) -c 'import sys, torch, mmcv, mmengine, mmseg, mmdet, numpy; print("Python", sys.version.split()[0], "torch", torch.__version__, "mmcv", mmcv.__version__, "mmengine", mmengine.__version__, "mmseg", mmseg.__version__, "mmdet", mmdet.__version__, "numpy", numpy.__version__)') in $$(( $$(date +%s) - start )) s" | tee -a benchmarks/test-oldest.log; exit $$status

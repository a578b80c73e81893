# Two commands: `make demo` (the main job) and `make test` (the tests).
# Each builds `.venv/` on first use from constraints.txt; later runs rebuild nothing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
DEPS_STAMP := $(VENV)/.deps-installed
PKG_STAMP := $(VENV)/.pkg-installed
# mmcv 2.1.0 compiles its C++ ops from source (~7 min on 2 cores, cached by pip afterwards).
MAX_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: venv test demo data benchmark clean-venv

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

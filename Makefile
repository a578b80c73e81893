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

.PHONY: venv test test-deploy test-oldest test-newest test-slurm demo data benchmark clean-venv

venv: $(PKG_STAMP)

$(DEPS_STAMP): constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt setuptools wheel
	$(PIP) install -q -c constraints.txt torch numpy
	$(PIP) install -q -c constraints.txt addict packaging pillow pyyaml yapf opencv-python mmengine
	MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(PIP) install --no-build-isolation -c constraints.txt mmcv
	$(PIP) install -q -c constraints.txt mmsegmentation mmdet ftfy regex pytest matplotlib scipy
	$(PIP) install -q -c constraints.txt onnx onnxruntime onnxscript onnx-ir ml_dtypes protobuf flatbuffers
	touch $@

$(PKG_STAMP): $(DEPS_STAMP) setup.cfg pyproject.toml
	$(PIP) install -q --no-build-isolation --no-deps -e .
	touch $@

test: $(PKG_STAMP)
	$(PY) -m pytest tests

# The deployment grid (every block x mode x similarity x mask_self through
# ONNX Runtime, torch.export and torch.compile), the export tool's round
# trips and a study config trained with MMEngine's compile=True against
# eager: the tests marked `deploy`, which `make test` leaves out (setup.cfg).
test-deploy: $(PKG_STAMP)
	$(PY) -m pytest tests -m deploy

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

# The Slurm path run for real (tools/slurm_train.sh, slurm_test.sh) on a
# one-node cluster started on this machine: installs Debian's slurm-wlm and
# munge if missing (as root); by hand, not in CI; the log goes to
# benchmarks/test-slurm.log.
test-slurm: $(PKG_STAMP)
	mkdir -p benchmarks
	set -o pipefail; start=$$(date +%s); \
	PYTHON=$(abspath $(PY)) tests/slurm/run.sh 2>&1 | grep -v '^  - Build settings' | tee benchmarks/test-slurm.log; \
	status=$$?; echo "[test-slurm] Slurm $$(dpkg-query -W -f='$${Version}' slurm-wlm 2>/dev/null), $$(git rev-parse --short HEAD), exit $$status in $$(( $$(date +%s) - start )) s" | tee -a benchmarks/test-slurm.log; exit $$status

# The newest end of the range (constraints-newest.txt: Python 3.12, as GPU
# nodes have it) in .venv-newest/: by hand, not in CI; the log goes to
# benchmarks/test-newest.log. PyPI's cp312 torch is its CUDA build: about
# 3 GB to download and 5.5 GB installed, so 10 GB free are checked first.
NEWEST_PYTHON ?= $(shell pyenv prefix 3.12 2>/dev/null || echo /usr)/bin/python3.12
NEW_VENV := .venv-newest
NEW_PY := $(NEW_VENV)/bin/python
NEW_PIP := $(NEW_PY) -m pip --disable-pip-version-check
NEW_STAMP := $(NEW_VENV)/.deps-installed

$(NEW_STAMP): constraints-newest.txt
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	if [ "$$free" -lt 10 ]; then echo "test-newest: $$free GB free here; the CUDA build of torch needs about 10 GB" >&2; exit 1; fi
	test -x $(NEW_PY) || $(NEWEST_PYTHON) -m venv $(NEW_VENV)
	$(NEW_PIP) install -q -c constraints-newest.txt setuptools wheel
	$(NEW_PIP) install -q -c constraints-newest.txt torch numpy
	$(NEW_PIP) install -q -c constraints-newest.txt addict packaging pillow pyyaml yapf opencv-python mmengine
	MMCV_WITH_OPS=1 MAX_JOBS=$(MAX_JOBS) $(NEW_PIP) install --no-build-isolation -c constraints-newest.txt mmcv
	$(NEW_PIP) install -q -c constraints-newest.txt mmsegmentation mmdet ftfy regex pytest matplotlib scipy
	$(NEW_PIP) install -q -c constraints-newest.txt onnx onnxruntime onnxscript onnx-ir ml_dtypes protobuf flatbuffers
	touch $@

test-newest: $(NEW_STAMP)
	$(NEW_PIP) install -q --no-build-isolation --no-deps -e .
	mkdir -p benchmarks
	set -o pipefail; start=$$(date +%s); \
	$(NEW_PY) -m pytest tests 2>&1 | tee benchmarks/test-newest.log; \
	status=$$?; echo "[test-newest] $$($(NEW_PY) -c 'import sys, torch, mmcv, mmengine, mmseg, mmdet, numpy; print("Python", sys.version.split()[0], "torch", torch.__version__, "mmcv", mmcv.__version__, "mmengine", mmengine.__version__, "mmseg", mmseg.__version__, "mmdet", mmdet.__version__, "numpy", numpy.__version__)') in $$(( $$(date +%s) - start )) s" | tee -a benchmarks/test-newest.log; exit $$status

# Two entry points for a fresh Debian machine: `make demo` and `make test`. Both bootstrap what
# they need, idempotently: the libusb system package open3d needs, a virtual environment with
# torch (the CPU wheel 2.13.0 unless one is installed), splatnet with its C++ extension.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
CSRC := $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cuh' -o -name '*.cu' 2>/dev/null)
DEPS_STAMP := $(VENV)/.splatnet-deps
EXT_STAMP := $(VENV)/.splatnet-ext
DEMO_OUT ?= out/demo

.PHONY: setup demo test lint cuda-check bench clean system-deps

setup: system-deps $(EXT_STAMP)

system-deps:
	@if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  echo "installing libusb-1.0-0 (needed by open3d)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEPS_STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip setuptools wheel ninja
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q --no-build-isolation -e ".[dev,video]"
	touch $@

$(EXT_STAMP): $(DEPS_STAMP) setup.py $(CSRC)
	$(PY) setup.py -q build_ext --inplace
	touch $@

demo: setup
	$(PY) examples/demo.py --out $(DEMO_OUT)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 tests

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check .

cuda-check:
	bash .ci/compile_cuda.sh

bench: setup
	$(PY) benchmarks/render.py --quick

clean:
	rm -rf build $(DEMO_OUT) splatnet/_C*.so $(EXT_STAMP)

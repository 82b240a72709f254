# Two entry points for a fresh Debian machine: `make demo` and `make test`. Both bootstrap what
# they need, idempotently: a virtual environment with torch (the CPU wheel 2.13.0 unless one is
# installed), splatnet with its C++ extension. `make demo` installs only what the demo needs;
# `make test` adds the test and lint tools and the libusb system package open3d needs.
#
# Set-up prints one line per step with its time; each step's full output goes to
# $(VENV)/setup.log, whose tail is printed when a step fails.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
TORCH_VERSION ?= 2.13.0
CSRC := $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cuh' -o -name '*.cu' 2>/dev/null)
DEPS_STAMP := $(VENV)/.splatnet-deps
DEV_STAMP := $(VENV)/.splatnet-dev
EXT_STAMP := $(VENV)/.splatnet-ext
LOG := $(VENV)/setup.log
DEMO_OUT ?= out/demo
CHROMIUM ?= /usr/bin/chromium
# (in variables: a literal comma would split $(call ...)'s arguments)
DEMO_SPEC := ".[video]"
DEV_SPEC := ".[dev,video]"

# $(call step,TITLE,COMMAND): run COMMAND with its output in $(LOG); one line with the time.
define step
	@t0=$$(date +%s); printf '%-58s' "setup: $(1)"; \
	if ( $(2) ) >>$(LOG) 2>&1; then echo " done ($$(( $$(date +%s) - t0 )) s)"; \
	else echo " FAILED"; echo "--- last lines of $(LOG):"; tail -n 40 $(LOG); exit 1; fi
endef

.PHONY: setup dev-setup demo test test-browser lint cuda-check bench clean system-deps chromium

setup: $(EXT_STAMP)

dev-setup: system-deps $(DEV_STAMP) $(EXT_STAMP)

system-deps:
	@if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  t0=$$(date +%s); printf '%-58s' "setup: libusb-1.0-0 (apt; open3d needs it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  if { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libusb-1.0-0; } >/dev/null 2>&1; \
	  then echo " done ($$(( $$(date +%s) - t0 )) s)"; else echo " FAILED (apt-get install libusb-1.0-0)"; exit 1; fi; \
	fi

# Debian's chromium for the viewer's browser test (tests/viewer/test_browser.py drives it with
# Playwright, which downloads no browser); `make test` skips that test where it is missing.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  t0=$$(date +%s); printf '%-58s' "setup: chromium (apt; the viewer's browser test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  if out=$$( { $$SUDO apt-get update -qq && \
	               $$SUDO apt-get install -y -qq --no-install-recommends chromium; } 2>&1 ); \
	  then echo " done ($$(( $$(date +%s) - t0 )) s)"; \
	  else echo " FAILED (apt-get install chromium)"; echo "$$out" | tail -n 20; exit 1; fi; \
	fi

$(PY):
	@mkdir -p $(VENV) && : > $(LOG)
	$(call step,virtual environment $(VENV),$(PYTHON) -m venv $(VENV))

# Runtime dependencies first (numpy before anything imports torch, so the build does not warn
# that torch cannot initialise NumPy), then splatnet itself, editable, without build isolation so
# the extension builds against the torch installed here.
$(DEPS_STAMP): pyproject.toml | $(PY)
	$(call step,pip / setuptools / wheel / ninja,$(PIP) install -q --upgrade pip setuptools wheel ninja)
	@if $(PY) -c "import torch" 2>/dev/null; then \
	  echo "setup: torch $$($(PY) -c 'import torch; print(torch.__version__)') already installed"; \
	else $(MAKE) --no-print-directory _torch; fi
	$(call step,numpy,$(PIP) install -q numpy)
	$(call step,splatnet (editable) + runtime dependencies + video extra,$(PIP) install -q --no-build-isolation -e $(DEMO_SPEC))
	@touch $@

.PHONY: _torch
_torch:
	$(call step,torch==$(TORCH_VERSION) (CPU wheel; the slowest step),$(PIP) install -q torch==$(TORCH_VERSION))

$(DEV_STAMP): $(DEPS_STAMP) pyproject.toml
	$(call step,test and lint tools (the dev extra),$(PIP) install -q --no-build-isolation -e $(DEV_SPEC))
	@touch $@

$(EXT_STAMP): $(DEPS_STAMP) setup.py $(CSRC)
	$(call step,C++ extension splatnet._C,$(PY) setup.py -q build_ext --inplace)
	@grep -h '^splatnet: building' $(LOG) | tail -n 1
	@touch $@

demo: setup
	$(PY) examples/demo.py --out $(DEMO_OUT)

test: dev-setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 tests

# The viewer's tests, the browser one included (in headless /usr/bin/chromium; 1-2 min on 2 cores).
test-browser: dev-setup chromium
	$(PY) -m pytest -q tests/viewer

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

cuda-check:
	bash .ci/compile_cuda.sh

bench: dev-setup
	$(PY) benchmarks/render.py --quick

clean:
	rm -rf build $(DEMO_OUT) splatnet/_C*.so $(EXT_STAMP)

# Two commands: `make demo` and `make test`. Each creates or updates .venv and installs what it needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt

.PHONY: demo test benchmark install install-dev java-deps armnn-deps web-deps web-demo clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# The installs are redone whenever pyproject.toml or constraints.txt change.
$(VENV)/.kit-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[kit]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[dev]'
	@touch $@ $(VENV)/.kit-installed

install: $(VENV)/.kit-installed
install-dev: $(VENV)/.dev-installed

# The main job: RegNetY-200MF (the kit's reference checkpoint) to full-int8 TFLite and to ONNX,
# each calibrated and validated on the bundled photographs, then one drift table for both, then the
# int8 file classifies the bundled photographs through the edge runtime (no TensorFlow there), and goes
# into the Android demo's assets (android_demo/README.md builds the app from there).
demo: $(VENV)/.kit-installed
	$(PY) -m converters.tflite --variant 200mf --int8
	$(PY) -m converters.onnx --variant 200mf
	$(PY) -m converters.validate --variant 200mf artifacts/regnety_200mf_int8.tflite artifacts/regnety_200mf_float32.onnx
	$(PY) -m edge.classify calibration/samples --model artifacts/regnety_200mf_int8.tflite --top 3
	$(PY) -m edge.android --model artifacts/regnety_200mf_int8.tflite

test: $(VENV)/.dev-installed java-deps armnn-deps web-deps
	$(PY) -m pytest

# The Android app's pure-Java core is compiled and JUnit-tested inside `make test` (tests/android):
# a JDK and junit4 from Debian's packages, installed when missing.
JUNIT_JAR ?= /usr/share/java/junit4.jar
java-deps:
	@if ! command -v javac >/dev/null || [ ! -f $(JUNIT_JAR) ]; then \
	  echo "installing a JDK and junit4 for the Android core's tests: apt-get install default-jdk-headless junit4"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q default-jdk-headless junit4 >/dev/null 2>&1 \
	    || { $$sudo apt-get update -q >/dev/null 2>&1 && $$sudo apt-get install -y -q default-jdk-headless junit4 >/dev/null 2>&1; } \
	    || echo "warning: could not install them; the Android core's tests will be skipped here (CI fails them)"; \
	fi

# The portable target's files are run on Arm NN inside `make test` (tests/edge/test_armnn.py): Debian's pyarmnn for
# /usr/bin/python3, its TfLite parser and reference CPU backend, installed when missing.
ARMNN_PACKAGES := python3-pyarmnn libarmnn-cpuref-backend22 libarmnntfliteparser22
armnn-deps:
	@if ! dpkg -s $(ARMNN_PACKAGES) >/dev/null 2>&1; then \
	  echo "installing Arm NN for the portable target's tests: apt-get install $(ARMNN_PACKAGES)"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q $(ARMNN_PACKAGES) >/dev/null 2>&1 \
	    || { $$sudo apt-get update -q >/dev/null 2>&1 && $$sudo apt-get install -y -q $(ARMNN_PACKAGES) >/dev/null 2>&1; } \
	    || echo "warning: could not install them; the Arm NN tests will be skipped here (CI fails them)"; \
	fi

# The browser demo (web_demo/) is tested in headless Chromium inside `make test` (tests/web): Node.js, npm and Chromium
# from Debian's packages when missing, then the npm packages pinned in web_demo/package-lock.json (`npm ci`, redone
# when the lockfile changes) and their runtimes copied into web_demo/vendor/, which the page serves itself.
WEB_STAMP := web_demo/node_modules/.kit-vendored
web-deps:
	@missing=""; command -v node >/dev/null || missing="$$missing nodejs"; command -v npm >/dev/null || missing="$$missing npm"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing what the web demo's tests need: apt-get install$$missing"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q $$missing >/dev/null 2>&1 \
	    || { $$sudo apt-get update -q >/dev/null 2>&1 && $$sudo apt-get install -y -q $$missing >/dev/null 2>&1; } \
	    || echo "warning: could not install them; the web demo's browser tests will be skipped here (CI fails them)"; \
	fi
	@if command -v npm >/dev/null && { [ ! -f $(WEB_STAMP) ] || [ web_demo/package-lock.json -nt $(WEB_STAMP) ] \
	    || [ web_demo/scripts/vendor.mjs -nt $(WEB_STAMP) ]; }; then \
	  echo "installing the web demo's npm packages: cd web_demo && npm ci"; \
	  (cd web_demo && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && node scripts/vendor.mjs) \
	    && touch $(WEB_STAMP) \
	    || echo "warning: npm ci failed; the web demo's browser tests will be skipped here (CI fails them)"; \
	fi

# The browser demo: the reference's int8 .tflite and float32 .onnx (converted when missing), served with the page on
# 127.0.0.1 (WEB_PORT=0 picks a free port); open the address it prints. Ctrl-C stops it.
WEB_PORT ?= 8000
WEB_MODELS := artifacts/regnety_200mf_int8.tflite artifacts/regnety_200mf_float32.onnx
web-demo: web-deps
	@[ -f artifacts/regnety_200mf_int8.tflite ] || { $(MAKE) --no-print-directory $(VENV)/.kit-installed && \
	  $(PY) -m converters.tflite --variant 200mf --int8; }
	@[ -f artifacts/regnety_200mf_float32.onnx ] || { $(MAKE) --no-print-directory $(VENV)/.kit-installed && \
	  $(PY) -m converters.onnx --variant 200mf; }
	$(PYTHON) web_demo/serve.py --port $(WEB_PORT) $(addprefix --model ,$(WEB_MODELS))

# Speed tables (benchmarks/README.md): convert every artifact of 200mf and 800mf, time them side by side.
benchmark: $(VENV)/.kit-installed
	benchmarks/run.sh 200mf
	benchmarks/run.sh 800mf

clean:
	rm -rf $(VENV) build *.egg-info

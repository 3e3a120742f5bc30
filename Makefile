# The two entry points of the README:
#   make demo   set everything up on a fresh machine, then run the main job
#   make test   set everything up on a fresh machine, then run the tests
# Everything else is a step of those two.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/fmnist-edge
RUN ?= runs/demo
SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo)
APT_PACKAGES := dataset-fashion-mnist

.PHONY: setup system-deps venv demo test lint clean

setup: system-deps venv

# Debian packages the project uses: the dataset.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing" >&2; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	  else \
	    echo "apt-get not found: install$$missing yourself, or pass --data-dir to fmnist-edge" >&2; \
	  fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $@

demo: setup
	$(CLI) data
	$(CLI) train --out $(RUN)

test: setup
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check toolkit converters edge_runtime benchmarks tests

clean:
	rm -rf $(VENV) runs build *.egg-info

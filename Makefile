# The two entry points of the README:
#   make demo   set everything up on a fresh machine, then run the main job
#   make test   set everything up on a fresh machine, then run the tests
# Everything else is a step of those two, or rebuilds what the package ships.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/fmnist-edge
RUN ?= runs/demo
# The dev photo folders (each in the labels.csv layout); every command takes them as repeated --photos.
PHOTOS ?= ../shared/real-photos ../shared/real-photos-more
PHOTO_FLAGS = $(addprefix --photos ,$(PHOTOS))
BUNDLE ?= runs/bundle
ZOO ?= runs/zoo
ZOO_ARCHS ?= seed-a seed-b seed-c seed-d edge
ZOO_MODELS = $(foreach arch,$(ZOO_ARCHS),$(ZOO)/$(arch)/model.keras)
# The bundled model's recipe is toolkit/recipes/bundled.toml (`fmnist-edge recipes bundled` prints it);
# BUNDLE_RECIPE=FILE builds another.
BUNDLE_RECIPE ?= bundled
SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo)
APT_PACKAGES := dataset-fashion-mnist

.PHONY: setup system-deps venv demo test test-arm64 lint wheel bundled-model zoo benchmarks clean

setup: system-deps venv

# Debian packages: the dataset, and for the tests a browser (and its driver) that renders the camera's
# and the labelling page, and an MQTT broker the camera publishes to.
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
	$(PY) -m pip install -q -e '.[train,mqtt,micro,dev]'
	touch $@

# The main job: train the default recipe, export int8 through the gate, benchmark, run the camera
# loop on a sample video made from test images. EPOCHS=N shortens the training and changes nothing
# else (CI runs `make demo EPOCHS=2`: the same architecture and the same commands users run).
EPOCHS ?=
demo: setup
	$(CLI) data
	$(CLI) train --out $(RUN) $(if $(EPOCHS),--epochs $(EPOCHS))
	$(CLI) export $(RUN)/model.keras --int8 --out $(RUN)/export
	$(CLI) bench $(RUN)/export/model_int8.tflite $(RUN)/export/model_int8.onnx $(RUN)/export/model_fp32.tflite \
	  --threads 1,2 --out $(RUN)/bench.md
	cat $(RUN)/bench.md
	$(PY) -m toolkit.synthetic --out $(RUN)/sample.mp4
	$(CLI) camera --model $(RUN)/export/model_int8.tflite --source $(RUN)/sample.mp4 --headless \
	  --record $(RUN)/annotated.mp4

test: APT_PACKAGES += chromium chromium-driver mosquitto
test: setup
	$(PY) -m pytest -q

# Every test that needs no TensorFlow, inside Debian arm64 roots (Raspberry Pi OS's base) under qemu,
# against the wheel `make wheel` makes, installed there from aarch64 wheels. The roots, their venvs and
# the wheels are cached in /var/cache/fmnist-edge (about 1.5 GB; a cold start takes 6 to 15 minutes).
# The tests marked `heavy` (full adapts, the fuzz test: minutes each under emulation) run in the
# ARM64_FULL root only; the other roots run everything else.
ARM64_SUITES ?= bookworm trixie
ARM64_FULL ?= bookworm
test-arm64: wheel
	for suite in $(ARM64_SUITES); do \
	  if [ "$$suite" = "$(ARM64_FULL)" ]; then set --; else set -- -m "not heavy"; fi; \
	  tests/arm64/run-suite.sh $$suite dist/fmnist_edge-*-py3-none-any.whl "$$@" || exit 1; \
	done

lint: venv
	$(VENV)/bin/ruff check toolkit converters edge_runtime benchmarks tests

# The one file a Raspberry Pi needs: dist/fmnist_edge-<version>-py3-none-any.whl, the bundled models
# inside. Copy it to the Pi and `pip install` it there (README, Raspberry Pi).
wheel: venv
	rm -rf dist build
	$(PY) -m pip wheel -q --no-deps --wheel-dir dist .
	@ls dist/*.whl

# The int8 models inside edge_runtime/core/models and the Keras file they come from (where
# `train --init bundled` starts): the bundled recipe, through the export gate (about 45 min on one core).
bundled-model: setup
	$(CLI) train --recipe $(BUNDLE_RECIPE) $(PHOTO_FLAGS) --out $(BUNDLE)
	$(CLI) export $(BUNDLE)/model.keras --int8 --micro --out $(BUNDLE)/export
	cp $(BUNDLE)/export/model_int8.tflite edge_runtime/core/models/default_int8.tflite
	cp $(BUNDLE)/export/model_int8.onnx edge_runtime/core/models/default_int8.onnx
	cp $(BUNDLE)/model.keras toolkit/bundled/model.keras
	$(PY) -m edge_runtime.field.replay edge_runtime/core/models/default_int8.onnx $(PHOTO_FLAGS)
	$(CLI) evaluate edge_runtime/core/models/default_int8.tflite edge_runtime/core/models/default_int8.onnx

# Every zoo architecture trained with its own recipe on the real photos too, and exported in every
# precision.
$(ZOO)/%/model.keras: | setup
	$(CLI) train --arch $* $(PHOTO_FLAGS) --out $(ZOO)/$*

zoo: setup $(ZOO_MODELS)
	for arch in $(ZOO_ARCHS); do \
	  $(CLI) export $(ZOO)/$$arch/model.keras --int8 --fp16 --out $(ZOO)/$$arch/export || exit 1; \
	done

# docs/zoo-benchmarks.md and its plots (docs/figures) from the zoo (`make zoo` first).
benchmarks: setup
	$(PY) benchmarks/run_matrix.py $(ZOO) --threads 1,2 $(PHOTO_FLAGS)

clean:
	rm -rf $(VENV) runs build dist *.egg-info

# Set up the engine in a virtual environment and run the demo or the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared abdominal CT beside the checkout; override to point elsewhere.
export SAMSEGMENT_DATA_DIR ?= $(abspath ../shared/data/abdomen-ct)
# MobileSAM's official checkpoint, shared beside the checkout (a user's machine downloads it).
export SAMSEGMENT_MOBILE_SAM ?= $(abspath ../shared/models/mobile-sam/mobile_sam.pt)

.PHONY: setup demo test test-fast lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test,lint]'
# sam2 has no wheel: build it against the torch above, without its optional CUDA extension
# (setuptools first: venvs of Python 3.12 and later come without it).
	$(BIN)/python -m pip install --quiet 'setuptools>=61'
	SAM2_BUILD_CUDA=0 $(BIN)/python -m pip install --quiet --no-build-isolation -c requirements/constraints.txt sam2==1.1.0
	touch $@

demo: setup
	$(BIN)/samsegment demo

test: setup
	$(BIN)/python -m pytest -ra

# Under a minute on two cores: no real weights, shared data, slicer-core, sam2, Ray cluster or
# process-starting tests; the tests run in two processes (pytest-xdist).
test-fast: setup
	$(BIN)/python -m pytest -q -n 2 -m "not realweights and not realdata and not slicer and not sam2 and not ray and not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) out

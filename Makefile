# Set up the engine in a virtual environment and run the demo or the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared abdominal CT beside the checkout; override to point elsewhere.
export SAMSEGMENT_DATA_DIR ?= $(abspath ../shared/data/abdomen-ct)

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test]'
	touch $@

demo: setup
	$(BIN)/samsegment demo

test: setup
	$(BIN)/python -m pytest -ra

clean:
	rm -rf $(VENV) out

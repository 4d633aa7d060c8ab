#!/usr/bin/env bash
# GRPO on 8 GPU(s) with accelerate + DeepSpeed ZeRO-2 and a vLLM generation server.
#   bash examples/lfkit/qwen3-1.7b/grpo_server_launch.sh GRPO.yaml [extra lfkit grpo train options, e.g. --resume CKPT]
# vLLM server mode: the first VLLM_GPUS GPUs serve generations (`trl vllm-serve`), the rest train.
# The served model must be the policy's starting point: the config's model_name_or_path (the merged
# SFT model: `lfkit grpo merge GRPO.yaml` writes it).
# Same run with TRL's own CLI: trl grpo --config GRPO.yaml --accelerate_config examples/lfkit/accelerate/accelerate_zero2.yaml
set -euo pipefail
config="${1:?usage: bash examples/lfkit/qwen3-1.7b/grpo_server_launch.sh GRPO.yaml [lfkit grpo train options]}"
shift
NPROC="${NPROC:-8}"
VLLM_GPUS="${VLLM_GPUS:-1}"
TOTAL_GPUS="${TOTAL_GPUS:-$((NPROC + VLLM_GPUS))}"
vllm_devices=$(seq -s, 0 $((VLLM_GPUS - 1)))
train_devices=$(seq -s, "$VLLM_GPUS" $((TOTAL_GPUS - 1)))
model=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['model_name_or_path'])" "$config")
lfkit grpo merge "$config"
CUDA_VISIBLE_DEVICES="$vllm_devices" trl vllm-serve --model "$model" --tensor-parallel-size "$VLLM_GPUS" \
    --port 8000 &
server=$!
trap 'kill $server' EXIT
export CUDA_VISIBLE_DEVICES="$train_devices"
accelerate launch --config_file examples/lfkit/accelerate/accelerate_zero2.yaml --num_processes "$NPROC" \
    -m lfkit.cli grpo train "$config" "$@"

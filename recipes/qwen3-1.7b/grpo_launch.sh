#!/usr/bin/env bash
# GRPO on 8 GPU(s) with accelerate + DeepSpeed ZeRO-2.
#   bash examples/lfkit/qwen3-1.7b/grpo_launch.sh GRPO.yaml [extra lfkit grpo train options, e.g. --resume CKPT]
# vLLM colocate mode: every training process runs its own vLLM engine on its GPU.
# Same run with TRL's own CLI: trl grpo --config GRPO.yaml --accelerate_config examples/lfkit/accelerate/accelerate_zero2.yaml
set -euo pipefail
config="${1:?usage: bash examples/lfkit/qwen3-1.7b/grpo_launch.sh GRPO.yaml [lfkit grpo train options]}"
shift
NPROC="${NPROC:-8}"
accelerate launch --config_file examples/lfkit/accelerate/accelerate_zero2.yaml --num_processes "$NPROC" \
    -m lfkit.cli grpo train "$config" "$@"

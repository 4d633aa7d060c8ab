#!/usr/bin/env bash
# Launch a lfkit recipe on 1 node(s) x 8 process(es) with LLaMA-Factory's
# torchrun launcher (DeepSpeed configs in the recipe need it).
#   single node:  bash examples/lfkit/qwen3-coder-30b-a3b/launch.sh RECIPE.yaml
#   multi node:   on every node, NNODES=2 NODE_RANK=<0..N-1> MASTER_ADDR=<node 0's address> \
#                 bash examples/lfkit/qwen3-coder-30b-a3b/launch.sh RECIPE.yaml
# Extra key=value arguments override the recipe (llamafactory-cli passes them to its parser).
set -euo pipefail
export FORCE_TORCHRUN="${FORCE_TORCHRUN:-1}"
export NNODES="${NNODES:-1}"
export NODE_RANK="${NODE_RANK:-0}"
export NPROC_PER_NODE="${NPROC_PER_NODE:-8}"
export MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
export MASTER_PORT="${MASTER_PORT:-29500}"
recipe="${1:?usage: bash examples/lfkit/qwen3-coder-30b-a3b/launch.sh RECIPE.yaml [key=value ...]}"
shift
exec llamafactory-cli train "$recipe" "$@"

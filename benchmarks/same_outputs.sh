#!/bin/bash
# The SmolLM2 demo (seed 0, hf backend) through an earlier commit and through this checkout, every artefact
# compared by sha256: corpus, SFT data, DPO pairs, the sampling journal's rows, predictions, adapters.
#   bash benchmarks/same_outputs.sh [OLD_REV] [OUT]      # ~25 min on 2 CPU cores at the sizes below
# Issue 27 ran it with OLD_REV=53dc1d5 (before the one-pipeline refactor). Two things differ by design and are
# compared apart: the journal's first line names its own run folder, and PEFT writes target_modules (a set)
# in hash order.
set -euo pipefail
OLD_REV=${1:-53dc1d5}
OUT=${2:-$(mktemp -d)}
SIZES=${SIZES:-"n_dev=16, n_sft=24, n_prefs=8"}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=$REPO/.venv/bin/python
export HF_HUB_OFFLINE=1 CUDA_VISIBLE_DEVICES=
run() {  # $1 = source folder, $2 = output folder; a source with engines runs the hf one, as the old one did
  local backend
  backend=$(grep -q '"backend"' "$1/lfkit/pipeline/config.py" && echo ", backend='hf'" || true)
  (cd "$1" && PYTHONPATH="$1" "$PY" -c "
from lfkit.pipeline.config import demo_config
from lfkit.pipeline.demo import run_demo
run_demo(demo_config('smollm2-135m', out='$2', $SIZES $backend))") > "$2.log" 2>&1
}
if [ -z "${COMPARE_ONLY:-}" ]; then  # COMPARE_ONLY=1: compare the runs already in OUT again
  git -C "$REPO" worktree add -f "$OUT/src-old" "$OLD_REV" > /dev/null
  trap 'git -C "$REPO" worktree remove --force "$OUT/src-old"' EXIT
  run "$OUT/src-old" "$OUT/old"
  run "$REPO" "$OUT/new"
fi
for side in old new; do
  (cd "$OUT/$side" && {
    find corpus data report -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.sqlite' \) \
      -not -name '*.candidates.jsonl' | sort | xargs sha256sum
    for j in data/*.candidates.jsonl; do echo "$(tail -n +2 "$j" | sha256sum | cut -d' ' -f1)  $j (rows)"; done
    find saves -maxdepth 2 -name adapter_model.safetensors | sort | xargs sha256sum
    for c in saves/*/adapter_config.json; do
      echo "$("$PY" -c "import json,sys; d=json.load(open('$c')); d['target_modules']=sorted(d['target_modules']); print(json.dumps(d, sort_keys=True))" | sha256sum | cut -d' ' -f1)  $c (sorted)"
    done
  }) > "$OUT/$side.sha"
done
if diff "$OUT/old.sha" "$OUT/new.sha"; then echo "IDENTICAL: $(wc -l < "$OUT/new.sha") artefacts ($OUT)"; else echo "DIFFERENT ($OUT)"; exit 1; fi

#!/usr/bin/env bash
# Prefill TTFT of one build under several CudaTuning settings (the
# backend's A/B knobs, dms-cuda-bench --tuning), on one card in one run (timings from different runs
# or cards are not comparable; docs/cuda.md). docs/prefill-attention.md,
# "Third round", has its numbers (made with the same loop before it was
# this script).
#
#   HERE:  scripts/gpu.sh build
#   THERE: run(command="bash scripts/gpu-prefill-ab.sh run", carry=[".carry/gpu"])
#
# SIDES: a space-separated list of name=key=value,key=value,... (default: every prefill
# knob off, each alone on, all on). ORDER: the names in the order to run them
# (default: each once, then back in reverse, so drift of the card hits all).
# Each run: one process, PROMPTS (default 16384,32768,16384,32768), chunks of
# MAX_BATCH_TOKENS (8192); prints each side's TTFTs.
set -euo pipefail
prompts="${PROMPTS:-16384,32768,16384,32768}"
off="cached_kept_keys=off,last_layer_logit_rows=off,q_bf16=off"
sides="${SIDES:-off=$off list=$off,cached_kept_keys=on cut=$off,last_layer_logit_rows=on q16=$off,q_bf16=on on=}"
source "$(dirname "$0")/gpu-bench-env.sh"
ensure_bench_model
declare -A tuning_of
names=()
for s in $sides; do
  tuning_of[${s%%=*}]="${s#*=}"
  names+=("${s%%=*}")
done
order="${ORDER:-${names[*]} $(printf '%s\n' "${names[@]}" | tac | tr '\n' ' ')}"
nvidia-smi --query-gpu=name --format=csv,noheader || true
i=0
for name in $order; do
  i=$((i + 1))
  f="$out/prefill-ab-$i-$name.jsonl"
  timeout 150 "$bundle/bin/dms-cuda-bench" --tuning "${tuning_of[$name]}" --model "$model" --prompts "$prompts" \
    --decode-contexts "" --micro 0 --max-batch-tokens "${MAX_BATCH_TOKENS:-8192}" > "$f"
  echo "$name $(grep -o '"tokens":[0-9]*,"ms":[0-9.]*' "$f" | sed 's/"tokens"://; s/,"ms":/: /' | tr '\n' ' ')"
done

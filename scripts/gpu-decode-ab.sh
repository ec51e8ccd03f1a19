#!/usr/bin/env bash
# Batch-1 decode, this tree against another build, on one card in one run
# (timings from different runs or cards are not comparable; docs/cuda.md).
#
#   HERE:  build the other tree's dms-cuda-bench (e.g. a `git worktree` of the
#          commit before), copy it to .carry/ab/dms-cuda-bench-a, and
#          scripts/gpu.sh build for this tree (B).
#   THERE: run(command="bash scripts/gpu-decode-ab.sh run",
#              carry=[".carry/gpu", ".carry/ab"])
#
# Or one build two ways: A_TUNING / B_TUNING (e.g. A_TUNING=pdl=none) are each
# side's dms-cuda-bench --tuning; with A_TUNING and no A_BENCH, A is this build too.
#
# Runs A B A B (ROUNDS pairs, default 2) so drift of the card hits both, each
# at CONTEXTS (default 4096,32768) for STEPS (64) steps, then prints the median
# step time of each side and B / A.
set -euo pipefail
contexts="${CONTEXTS:-4096,32768}"
source "$(dirname "$0")/gpu-bench-env.sh"
a_bench="${A_BENCH:-$root/.carry/ab/dms-cuda-bench-a}"
[ -n "${A_TUNING:-}" ] && [ -z "${A_BENCH:-}" ] && a_bench="$bundle/bin/dms-cuda-bench"
ensure_bench_model
: > "$out/decode-ab.jsonl"
for round in $(seq 1 "${ROUNDS:-2}"); do
  for side in A B; do
    bin="$bundle/bin/dms-cuda-bench" side_tuning="${B_TUNING:-}"
    [ "$side" = A ] && bin="$a_bench" side_tuning="${A_TUNING:-}"
    timeout 200 "$bin" --tuning "$side_tuning" --model "$model" --prompts 16 --decode-contexts "$contexts" \
      --decode-steps "${STEPS:-64}" --micro 0 |
      grep '"kind":"decode"' | sed "s/^{/{\"side\":\"$side\",\"round\":$round,/" |
      tee -a "$out/decode-ab.jsonl" || true
  done
done
python3 - "$out/decode-ab.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for ctx in sorted({r["context"] for r in rows}):
    a = [r["ms"] for r in rows if r["context"] == ctx and r["side"] == "A"]
    b = [r["ms"] for r in rows if r["context"] == ctx and r["side"] == "B"]
    if not a or not b:
        continue
    fb = statistics.median(r["roofline_fraction"] for r in rows if r["context"] == ctx and r["side"] == "B")
    print(f"decode {ctx}: A {statistics.median(a):.3f} ms, B {statistics.median(b):.3f} ms, "
          f"B/A {statistics.median(b) / statistics.median(a):.3f}, B at {fb:.1%} of the roofline")
PY

#!/usr/bin/env bash
# CPU reference-engine timings on the demo presets: scoring a 200-token prompt
# (all logits), and generation (TTFT of a 200-token prompt, decode tokens/s).
# Usage: scripts/cpu-bench.sh [BUILD_DIR]   (writes nothing; prints a table)
set -euo pipefail
BUILD_DIR="${1:-build}"
BIN="$BUILD_DIR/bin"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
TOKENS=$(seq 0 199 | awk '{printf "%s%d", (NR>1?",":""), ($1*7919)%150000}')
printf "%-8s %-12s %-14s %-10s %-14s %-8s\n" preset params score_200_s ttft_ms decode_tok_s kv_ratio
for preset in tiny small; do
  M="$TMP/$preset"
  "$BIN/dms-engine" make-model --out "$M" --preset "$preset" >/dev/null 2>&1
  params=$("$BIN/dms-engine" info --model "$M" | python3 -c "import json,sys; print(json.load(sys.stdin).get('num_parameters','?'))")
  best=999
  for i in 1 2 3; do
    s=$( { /usr/bin/time -f "%e" "$BIN/dms-engine" score --model "$M" --tokens "$TOKENS" --out "$TMP/l.f32" >/dev/null; } 2>&1 | tail -1)
    best=$(python3 -c "print(min($best, $s))")
  done
  out=$("$BIN/dms-engine" generate --model "$M" --tokens "$TOKENS" --max-tokens 64 --temperature 0 --ignore-eos --json)
  read -r ttft rate ratio < <(python3 -c "import json,sys; d=json.loads(sys.argv[1]); t=d['timing']; print(round(t['ttft_ms'],1), round(t['decode_tokens_per_s'],1), round(d['kv']['compression_ratio'],2))" "$out")
  printf "%-8s %-12s %-14s %-10s %-14s %-8s\n" "$preset" "$params" "$best" "$ttft" "$rate" "$ratio"
done

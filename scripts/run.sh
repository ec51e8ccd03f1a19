#!/usr/bin/env bash
# The main job behind `make run`. Without MODEL, generates a tiny random demo
# checkpoint (its output is random text) and runs one generation on it.
set -euo pipefail
BUILD_DIR="${BUILD_DIR:-build}"
BIN="$BUILD_DIR/bin"
MODEL="${MODEL:-}"
if [[ -z "$MODEL" ]]; then
  MODEL="$BUILD_DIR/demo-model"
  if [[ ! -f "$MODEL/config.json" ]]; then
    "$BIN/dms-engine" make-model --out "$MODEL" --preset tiny
  fi
  echo "run: no MODEL given: using the random demo checkpoint $MODEL (its output is random text)"
fi
"$BIN/dms-engine" info --model "$MODEL"

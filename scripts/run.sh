#!/usr/bin/env bash
# The main job behind `make run`: starts dms-server on MODEL, or on a random
# tiny demo checkpoint (generated once; its output is random text) when no
# MODEL is given, and prints how to call it. Ctrl-C stops the server.
set -euo pipefail
BUILD_DIR="${BUILD_DIR:-build}"
BIN="$BUILD_DIR/bin"
MODEL="${MODEL:-}"
LISTEN="${LISTEN:-127.0.0.1:50051}"
METRICS="${METRICS_LISTEN:-127.0.0.1:9400}"
BACKEND="${BACKEND:-auto}"
if [[ -z "$MODEL" ]]; then
  MODEL="$BUILD_DIR/demo-model"
  if [[ ! -f "$MODEL/config.json" ]]; then
    echo "run: generating the tiny random demo checkpoint in $MODEL"
    "$BIN/dms-engine" make-model --out "$MODEL" --preset tiny
  fi
  DEMO=1
fi
cat <<MSG

  dms-server is starting on $LISTEN (metrics: http://$METRICS/metrics)
  model: $MODEL${DEMO:+   <- RANDOM demo weights: the text it generates is gibberish by design}

  In another terminal:
    $BIN/dms health --target $LISTEN
    $BIN/dms info --target $LISTEN
    $BIN/dms generate --target $LISTEN --prompt "The capital of France is" --max-tokens 32
    $BIN/dms chat --target $LISTEN
    $BIN/dms bench --target $LISTEN --concurrency 4 --num-requests 32

  Your own checkpoint:  make run MODEL=/path/to/Qwen3-8B-DMS-8x
  Stop with Ctrl-C.

MSG
exec "$BIN/dms-server" --model "$MODEL" --listen "$LISTEN" --metrics-listen "$METRICS" --backend "$BACKEND"

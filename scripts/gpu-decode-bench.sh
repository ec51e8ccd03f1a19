#!/usr/bin/env bash
# Batched decode against its floor and the ideal dense peer (issue 30 point 6;
# docs/batch-decode.md has the results), all on one card in one run:
#
#   1. the peer: scripts/peer_dense_decode.py (PyTorch, one CUDA graph per
#      step, SDPA over a contiguous dense bf16 cache) at the same shapes;
#   2. ours in the engine (dms-cuda-bench): DMS and our dense cache, greedy,
#      at 1..128 streams of 8K and 16 of 32K; then sampled rows (temperature
#      0.6, top_p 0.95, top_k 20; and temperature 1.0 alone) at 1 and 32;
#   3. ours through dms-server and `dms bench` at 1 and 32 streams, greedy
#      and the two sampled settings (what clients see).
#
#   scripts/gpu.sh build                  here
#   scripts/gpu-decode-bench.sh run       on the GPU machine, .carry/gpu.tgz carried
# Env: STREAMS (1,8,32,64,128), CONTEXT (8192), CONFIGS (dms,dense; dms-streamed,
# dense-streamed decode with the streamed attention kernel), PEER/ENGINE/SAMPLED/SERVER=0 skip a part,
# DEVICE_SAMPLING (the server flag, default --device-sampling; --host-sampling for the host).
set -euo pipefail
source "$(dirname "$0")/gpu-bench-env.sh"
ensure_bench_model
streams="${STREAMS:-1,8,32,64,128}"
context="${CONTEXT:-8192}"
configs="${CONFIGS:-dms,dense}"  # dms-streamed / dense-streamed: the streamed decode attention (A/B)
shapes=$(echo "$streams" | tr ',' '\n' | sed "s/\$/x$context/" | paste -sd, -)
bench="$bundle/bin/dms-cuda-bench"

if [ "${PEER:-1}" = 1 ]; then
  PYTHONUNBUFFERED=1 timeout 300 python3 "$root/scripts/peer_dense_decode.py" --config "$model/config.json" \
    --shapes "$shapes,16x32768" | tee "$out/decode-peer.jsonl" || true
fi
if [ "${ENGINE:-1}" = 1 ]; then
  timeout 300 "$bench" --model "$model" --batch-streams "$streams" --batch-context "$context" \
    --batch-capacity 0 --batch-configs "$configs" | tee "$out/decode-engine.jsonl" || true
  timeout 200 "$bench" --model "$model" --batch-streams 16 --batch-context 32768 --batch-capacity 0 \
    --batch-configs "$configs" | tee -a "$out/decode-engine.jsonl" || true
fi
if [ "${SAMPLED:-1}" = 1 ]; then
  for args in "--batch-temperature 0.6 --batch-top-p 0.95 --batch-top-k 20" "--batch-temperature 1"; do
    # shellcheck disable=SC2086
    timeout 200 "$bench" --model "$model" --batch-streams 1,32 --batch-context "$context" --batch-configs dms \
      --batch-capacity 0 $args | tee -a "$out/decode-engine.jsonl" || true
  done
fi
if [ "${SERVER:-1}" = 1 ]; then
  # The engine alone at the server runs' shape (1,024-token prompts, 256 new
  # tokens: ~1,150 tokens of context on average), for the clients' share of it.
  timeout 200 "$bench" --model "$model" --batch-streams 1,32 --batch-context 1152 --batch-configs dms \
    --batch-capacity 0 | sed 's/"kind":"batch_decode"/"kind":"batch_decode_server_shape"/' \
    | tee -a "$out/decode-engine.jsonl" || true
  port=50161
  "$bundle/bin/dms-server" --backend cuda --model "$model" --listen "127.0.0.1:$port" --metrics-listen off \
    --kv-memory 0.9 --max-running 64 --generation-config ignore ${DEVICE_SAMPLING:---device-sampling} \
    > "$out/decode-server.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 120); do
    "$bundle/bin/dms" health --target "127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 1
  done
  for c in 1 32; do
    for s in "greedy:--temperature 0" "t06:--temperature 0.6 --top-p 0.95 --top-k 20" "t1:--temperature 1"; do
      name=${s%%:*}
      # shellcheck disable=SC2086
      timeout 150 "$bundle/bin/dms" bench --target "127.0.0.1:$port" --concurrency "$c" --num-requests "$c" \
        --warmup 1 --input-len 1024 --output-len 256 --dataset random ${s#*:} \
        --json "$out/decode-server-$name-$c.json" --no-progress > "$out/decode-server-$name-$c.txt" 2>&1 || true
    done
  done
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
fi

python3 - "$out" <<'PY' | tee "$out/decode-table.txt"
# The issue-30 table: ms a step and tokens/s of DMS, our dense cache and the
# peer per shape, DMS's share of its byte floor, DMS vs the peer; sampled vs
# greedy in the engine and through the server.
import glob, json, os, sys
out = sys.argv[1]
def load(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.startswith("{")] if os.path.exists(p) else []
peer = {(r["streams"], r["context"]): r for r in load("decode-peer.jsonl") if r.get("kind") == "peer_dense_decode"}
ours = [r for r in load("decode-engine.jsonl") if r.get("kind") == "batch_decode" and r.get("fits")]
def get(config, s, c, sampling="greedy"):
    for r in ours:
        if (r["config"], r["streams"], r["context"], r.get("sampling", "greedy")) == (config, s, c, sampling):
            return r
print("batched decode: ms a step (tokens/s); DMS share of its byte floor; DMS vs the ideal dense peer")
print(f"{'streams x ctx':>14s} {'DMS':>18s} {'floor':>6s} {'our dense':>18s} {'peer dense':>18s} {'DMS/peer':>9s}")
shapes = sorted({(r["streams"], r["context"]) for r in ours} | set(peer))
for s, c in shapes:
    d, dn, p = get("dms", s, c), get("dense", s, c), peer.get((s, c))
    fmt = lambda r: f"{r['ms_per_step']:7.2f} ({r['tokens_per_s']:7.0f})" if r else f"{'-':>17s}"
    pr = p if p and p.get("fits") else None
    ratio = f"{pr['ms_per_step'] / d['ms_per_step']:8.2f}x" if d and pr else f"{'-':>9s}"
    floor = f"{d['bytes_bw_fraction']:5.0%}" if d else "   - "
    print(f"{s:>6d} x {c:<6d} {fmt(d)} {floor} {fmt(dn)} {fmt(pr)} {ratio}")
print()
print("sampled decode in the engine (DMS, tokens/s, share of greedy):")
for s in (1, 32):
    g = get("dms", s, 8192)
    for r in ours:
        if r["config"] == "dms" and r["streams"] == s and r.get("sampling", "greedy") != "greedy" and g:
            print(f"  {s:3d} streams {r['sampling']:28s} {r['tokens_per_s']:8.0f} ({r['tokens_per_s'] / g['tokens_per_s']:.1%} of greedy {g['tokens_per_s']:.0f})")
print()
print("through dms-server + dms bench (output tokens/s of the clients):")
for c in (1, 32):
    base = None
    for name in ("greedy", "t06", "t1"):
        p = os.path.join(out, f"decode-server-{name}-{c}.json")
        if not os.path.exists(p):
            continue
        tp = json.load(open(p)).get("throughput", {})
        # The clients' decode rate: steady-state output tokens/s when the
        # run had a steady window, else all output tokens over the run.
        tps = tp.get("steady_decode_tokens_per_s") or tp.get("output_tokens_per_s") or 0
        base = base or tps
        print(f"  concurrency {c:3d} {name:7s} {tps:9.1f} tokens/s ({tps / base:.1%} of greedy)")
    engine = [r for r in load("decode-engine.jsonl")
              if r.get("kind") == "batch_decode_server_shape" and r.get("streams") == c and r.get("fits")]
    if engine and base:
        e = engine[0]["tokens_per_s"]
        print(f"  concurrency {c:3d} greedy through the server is {base / e:.1%} of the engine alone "
              f"at 1152 tokens of context ({e:.1f} tokens/s)")
PY

#!/usr/bin/env bash
# Issue 11's comparison on the GPU machine: every KV policy on the same
# checkpoint through dms-server --backend cuda (docs/kv-policies.md has the
# table). Run by scripts/gpu-bench.sh, or alone:
#   scripts/gpu.sh build                     here
#   scripts/gpu-policies.sh run              there, .carry/gpu carried
# Env: MODEL_DIR (default /tmp/dms-qwen3-8b, made if missing), POLICY_LENGTHS,
# POLICY_SLOW_LENGTHS, OUT.
set -euo pipefail
source "$(dirname "$0")/gpu-bench-env.sh"
ensure_bench_model

# Issue 11: every KV policy on the same checkpoint through dms-server --backend
# cuda: the DMS row (--kv-policy auto), then a dense-cache server running the
# dense row and the training-free policies at compression ratio 0.5, one
# request per (policy, prompt length), 64 new tokens. snapkv and
# expected-attention score on the host (docs/kv-policies.md), so they run at
# the shorter lengths only. Random weights: the needle cannot be found, so the
# table has no correctness column here (dms eval needle --kv-policy gives it
# on a real checkpoint).
: > "$out/bench-policies.jsonl"
policy_server() {  # $1: the server's --kv-policy; then the request policies
  local spol=$1 port=50152 mport=9152
  shift
  "$bundle/bin/dms-server" --backend "${BACKEND:-cuda}" --model "$model" --listen "127.0.0.1:$port" \
    --metrics-listen "127.0.0.1:$mport" --kv-memory "${SERVER_KV_MEMORY:-40GiB}" --kv-policy "$spol" > "$out/server-$spol.log" 2>&1 &
  local spid=$!
  for _ in $(seq 1 120); do
    "$bundle/bin/dms" health --target "127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 1
  done
  for pol in "$@"; do
    local lengths="${POLICY_LENGTHS:-4096,8192,16384,32768}" flags=""
    case "$pol" in
      snapkv|expected-attention) lengths="${POLICY_SLOW_LENGTHS:-4096,8192}" ;;
    esac
    case "$pol" in auto|dense) ;; *) flags="--kv-policy $pol --compression-ratio 0.5" ;; esac
    for len in ${lengths//,/ }; do
      timeout 150 "$bundle/bin/dms" bench --target "127.0.0.1:$port" --dataset random --input-len "$len" \
        --output-len 64 --num-requests 1 --warmup 0 --no-progress -q $flags --json "$out/pol.json" \
        > /dev/null 2>> "$out/policies.err" || { echo "{\"policy\":\"$pol\",\"tokens\":$len,\"error\":true}" >> "$out/bench-policies.jsonl"; continue; }
      python3 - "$out/pol.json" "$pol" "$len" >> "$out/bench-policies.jsonl" <<'PY2' || true
import json, sys
j = json.load(open(sys.argv[1])); r = j["runs"][0] if j.get("runs") else j
req = r["per_request"][0] if r.get("per_request") else {}
tpot = (r.get("tpot") or {}).get("p50")
print(json.dumps({"policy": sys.argv[2], "tokens": int(sys.argv[3]), "ttft_ms": 1e3 * r["ttft"]["p50"],
                "tokens_per_s": r["throughput"]["output_tokens_per_s"],
                "decode_tokens_per_s": 1 / tpot if tpot else None,
                "compression": req.get("compression_ratio"), "completed": r.get("completed")}))
PY2
    done
  done
  python3 - "$mport" "$spol" >> "$out/bench-policies.jsonl" <<'PY2' || true
import json, re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
peak = [float(m.group(1)) for m in re.finditer(r'^dms_device_memory_bytes\{[^}]*kind="peak"[^}]*\} (\S+)', text, re.M)]
print(json.dumps({"server_policy": sys.argv[2], "peak_device_GB": max(peak) / 1e9 if peak else None}))
PY2
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
}
policy_server auto auto
policy_server dense dense knorm streaming snapkv expected-attention
cat "$out/bench-policies.jsonl"

python3 - "$out/bench-policies.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"{'policy':<20}{'tokens':>7}{'TTFT ms':>10}{'tok/s':>8}{'decode tok/s':>14}{'KV compression':>16}")
for r in rows:
    if "policy" not in r:
        continue
    if r.get("error"):
        print(f"{r['policy']:<20}{r['tokens']:>7}  failed (policies.err)")
        continue
    dec = r.get("decode_tokens_per_s") or float("nan")
    comp = r.get("compression") or float("nan")
    print(f"{r['policy']:<20}{r['tokens']:>7}{r['ttft_ms']:>10.1f}{r['tokens_per_s']:>8.1f}{dec:>14.1f}{comp:>15.2f}x")
for r in rows:
    if "server_policy" in r and r.get("peak_device_GB"):
        print(f"server --kv-policy {r['server_policy']}: peak device memory {r['peak_device_GB']:.2f} GB")
PY

#!/usr/bin/env bash
# GPU benchmark (issue 5 item 7; docs/cuda.md has the results): on a
# `make-model --preset qwen3-8b` checkpoint (random weights, real geometry,
# 87.5% eviction), the CUDA backend's TTFT at 4K-32K prompt tokens, batch-1
# decode at 4K and 16K context (and at 4K with graphs / the GEMV kernel
# switched off) and peak device memory; the same shapes through Hugging Face
# transformers (sdpa, bf16, random weights) as the peer; the device's copy
# bandwidth and bf16 GEMM rate (the ceilings); then kernel microbenchmarks:
# decode GEMV vs cuBLAS at m = 1, tensor-core DMS prefill attention TFLOP/s.
#
#   scripts/gpu.sh build                  here (bundles dms-cuda-bench too)
#   scripts/gpu-bench.sh run              on the GPU machine, .carry/gpu carried
# Env: PROMPTS (4096,8192,16384,32768), CONTEXTS (4096,16384), STEPS (64).
set -euo pipefail
prompts="${PROMPTS:-4096,8192,16384,32768}"
contexts="${CONTEXTS:-4096,16384}"
steps="${STEPS:-64}"
source "$(dirname "$0")/gpu-bench-env.sh"
ensure_bench_model
# SINGLE=0 skips this part (TTFT, batch-1 decode, kernel microbenchmarks).
[ "${SINGLE:-1}" = 1 ] && timeout 300 "$bundle/bin/dms-cuda-bench" --model "$model" --prompts "$prompts" \
  --decode-contexts "$contexts" --decode-steps "$steps" | tee "$out/bench-dms.jsonl" || true

[ "${PEERS:-1}" = 1 ] && PYTHONUNBUFFERED=1 timeout 180 python3 - "$model" "$prompts" "$contexts" "$steps" <<'PY' | tee "$out/bench-hf.jsonl" || true
# The peer: transformers Qwen3ForCausalLM, sdpa attention, bf16, random
# weights, dense KV cache (transformers has no DMS eviction).
import json, statistics, sys, time
import torch, transformers
from transformers import AutoConfig, Qwen3ForCausalLM
model_dir, prompts, contexts, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = AutoConfig.from_pretrained(model_dir)
cfg._attn_implementation = "sdpa"
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = Qwen3ForCausalLM(cfg)
model.eval()
vocab = cfg.vocab_size
print(json.dumps({"kind": "peer", "transformers": transformers.__version__, "torch": torch.__version__,
                  "attn": model.config._attn_implementation}), flush=True)

@torch.inference_mode()
def prefill(n):
    ids = torch.randint(0, vocab, (1, n), device="cuda")
    torch.cuda.synchronize(); t = time.perf_counter()
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    torch.cuda.synchronize()
    return time.perf_counter() - t, out

prefill(1024)
torch.cuda.reset_peak_memory_stats()
for n in map(int, prompts.split(",")):
    sec, out = prefill(n)
    del out
    print(json.dumps({"kind": "ttft", "tokens": n, "ms": sec * 1e3}), flush=True)
with torch.inference_mode():
    for ctx in map(int, contexts.split(",")):
        _, out = prefill(ctx)
        pkv, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        times = []
        for _ in range(steps):
            torch.cuda.synchronize(); t = time.perf_counter()
            out = model(input_ids=nxt, past_key_values=pkv, use_cache=True)
            pkv, nxt = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.synchronize(); times.append((time.perf_counter() - t) * 1e3)
        ms = statistics.median(times)
        print(json.dumps({"kind": "decode", "context": ctx, "ms": ms, "tokens_per_s": 1e3 / ms}), flush=True)
        del out, pkv
print(json.dumps({"kind": "memory", "peak_used_GB": torch.cuda.max_memory_allocated() / 1e9}), flush=True)
PY

# Issue 6: the same prompts in one step (workspace for 32K rows) against the
# chunks of 8192 above: chunked prefill should lose at most 10%.
if [ "${ONESHOT:-1}" = 1 ]; then
  timeout 200 "$bundle/bin/dms-cuda-bench" --model "$model" --prompts 16384,32768 --decode-contexts "" \
    --max-batch-tokens 32768 --micro 0 | sed 's/"kind":"ttft"/"kind":"ttft_oneshot"/' | tee "$out/bench-oneshot.jsonl" || true
fi
# Issue 7: batched decode at 8K context, DMS against the same checkpoint
# with a dense cache (force_dense), same KV pool bytes; the 32K streams that
# fit in each.
# BATCH=0 skips it (a prefill-only run).
[ "${BATCH:-1}" = 1 ] && { timeout 300 "$bundle/bin/dms-cuda-bench" --model "$model" --batch-streams "${BATCH_STREAMS:-1,8,32,64}" \
  --batch-context "${BATCH_CONTEXT:-8192}" --capacity-context 32768 | tee "$out/bench-batch.jsonl" || true; }
# The same 32 streams through dms-server and the dms load tester (decode
# rate seen by the clients, to compare with the engine's figure above).
if [ "${SERVER_BENCH:-1}" = 1 ]; then
  port=50151
  "$bundle/bin/dms-server" --backend cuda --model "$model" --listen "127.0.0.1:$port" --metrics-listen off \
    --kv-memory "${SERVER_KV_MEMORY:-0.9}" --max-running 64 > "$out/server.log" 2>&1 &
  spid=$!
  for _ in $(seq 1 120); do
    "$bundle/bin/dms" health --target "127.0.0.1:$port" >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 240 "$bundle/bin/dms" bench --target "127.0.0.1:$port" --concurrency 32 --num-requests 32 \
    --input-len "${BATCH_CONTEXT:-8192}" --output-len "${SERVER_OUTPUT_LEN:-1024}" --dataset random \
    --json "$out/bench-server.json" --no-progress > "$out/bench-server.txt" 2>&1 || true
  tail -30 "$out/bench-server.txt"
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
fi

# Issue 11: every KV policy through dms-server on CUDA (scripts/gpu-policies.sh).
if [ "${POLICIES:-1}" = 1 ]; then
  OUT="$out" MODEL_DIR="$model" bash "$root/scripts/gpu-policies.sh" run || true
fi

# Attention peers (issue 6): one layer of Qwen3-8B heads (32 query, 8 KV,
# head_dim 128), bf16, one fresh chunk: PyTorch SDPA dense causal, and
# FlexAttention with the DMS mask (window 512, each key marked with
# probability 0.875: visible iff causal and (within the window or unmarked)),
# the approach of NVIDIA Model-Optimizer. Only the attention call is timed
# (the block mask is built once per length, outside the timing).
[ "${PEERS:-1}" = 1 ] && PYTHONUNBUFFERED=1 timeout 240 python3 - "$prompts" <<'PY' | tee "$out/bench-attn-peer.jsonl" || true
import json, statistics, sys
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention, create_block_mask
hq, hkv, hd, window, rate = 32, 8, 128, 512, 0.875
flex = torch.compile(flex_attention, dynamic=False)
def median_ms(fn, reps=7):
    fn(); torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)
print(json.dumps({"kind": "peer_attn_info", "device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
for n in map(int, sys.argv[1].split(",")):
    torch.manual_seed(n)
    q = torch.randn(1, hq, n, hd, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, hkv, n, hd, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, hkv, n, hd, device="cuda", dtype=torch.bfloat16)
    # marked[h, j]: key j is evicted once it leaves the window (mark d[j+1]).
    marked = torch.rand(hkv, n, device="cuda") < rate
    marked[:, -1] = False
    ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    print(json.dumps({"kind": "peer_attn", "impl": "sdpa_dense_causal", "tokens": n, "ms": ms}), flush=True)
    def dms_mask(b, h, qi, kj):
        return (kj <= qi) & ((qi - kj <= window) | ~marked[h // (hq // hkv), kj])
    try:
        bm = create_block_mask(dms_mask, B=None, H=hq, Q_LEN=n, KV_LEN=n, device="cuda", _compile=True)
        ms = median_ms(lambda: flex(q, k, v, block_mask=bm, enable_gqa=True))
        print(json.dumps({"kind": "peer_attn", "impl": "flex_dms_mask", "tokens": n, "ms": ms}), flush=True)
        del bm
    except Exception as e:  # report, keep the other rows
        print(json.dumps({"kind": "peer_attn", "impl": "flex_dms_mask", "tokens": n, "ms": float("nan"),
                          "error": str(e)[:200]}), flush=True)
    del q, k, v
    torch.cuda.empty_cache()
PY

python3 - "$out/bench-dms.jsonl" "$out/bench-hf.jsonl" "$out/bench-attn-peer.jsonl" "$out/bench-batch.jsonl" "$out/bench-server.json" "$out/bench-oneshot.jsonl" <<'PY' | tee "$out/bench-table.txt"
import json, sys
def load(p):
    try:
        return [json.loads(l) for l in open(p) if l.startswith("{")]
    except OSError:
        return []
ours, peer, apeer, batch = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3]), load(sys.argv[4])
try:
    server = json.load(open(sys.argv[5]))
except (OSError, ValueError):
    server = None
oneshot = load(sys.argv[6])
# (The KV-policy table is printed by scripts/gpu-policies.sh.)
def pick(rows, kind, key=None, val=None):
    return next((r for r in rows if r["kind"] == kind and (key is None or r.get(key) == val)), None)
c = pick(ours, "ceilings")
if c:
    print(f"device {c['device']}: copy {c['copy_GBps']:.0f} GB/s (read+write), bf16 GEMM {c['bf16_gemm_TFLOPs']:.0f} TFLOP/s")
print(f"{'':22}{'dms-serve':>12}{'peer (sdpa)':>14}{'ratio':>9}")
for r in (x for x in ours if x["kind"] == "ttft"):
    p = pick(peer, "ttft", "tokens", r["tokens"])
    pm = p["ms"] if p else float("nan")
    print(f"TTFT {r['tokens']:>6} tok (ms) {r['ms']:>12.1f}{pm:>14.1f}{r['ms'] / pm:>8.2f}x  (DMS compression {r['compression']:.1f}x)")
for r in (x for x in ours if x["kind"] == "decode"):
    p = pick(peer, "decode", "context", r["context"])
    pt = p["tokens_per_s"] if p else float("nan")
    print(f"decode @{r['context']:>6} (tok/s) {r['tokens_per_s']:>10.1f}{pt:>14.1f}{r['tokens_per_s'] / pt:>8.2f}x  "
          f"roofline {r['roofline_ms']:.2f} ms/token, {100 * r['roofline_fraction']:.0f}% of it")
for r in (x for x in ours if x["kind"] == "decode_variant"):
    print(f"  decode @{r['context']} with {r['variant']:<12} {r['ms']:>8.3f} ms/token, {100 * r['roofline_fraction']:.0f}% of the roofline")
m, pm = pick(ours, "memory"), pick(peer, "memory")
if m:
    print(f"peak device memory (GB) {m['peak_used_GB']:>9.2f}{(pm or {}).get('peak_used_GB', float('nan')):>14.2f}")
g = [x for x in ours if x["kind"] == "gemv"]
if g:
    print("decode GEMV at m=1 (GB/s of weights, fraction of the copy bandwidth):")
    for r in g:
        print(f"  {r['shape']:<8} {r['k']:>6}x{r['n']:<7} {r['impl']:<7} {r['us']:>8.1f} us {r['GBps']:>6.0f} GB/s {100 * r['copy_fraction']:>4.0f}%")
a = [x for x in ours if x["kind"] == "attn"]
if a:
    info = pick(apeer, "peer_attn_info")
    print("prefill attention, one fresh chunk, Qwen3-8B heads, W 512, 87.5% marked"
          + (f" (peers: torch {info['torch']} on {info['device']})" if info else ""))
    print(f"  core: {next((r.get('core', '?') for r in a if r['mode'] == 'dms'), '?')}; 'wgmma ws' and 'mma.sync'"
          " are the same sparse walk on the warp-specialized wgmma kernel and the portable core")
    print(f"  {'tokens':>6} {'sdpa dense':>11} {'flex DMS':>10} {'ours dms':>9} {'wgmma ws':>9} {'mma.sync':>9} {'walk all':>9} {'ours dense':>11}"
          f" {'vs sdpa':>8} {'vs flex':>8} {'visible':>8} {'TFLOP/s vis':>12}")
    for n in sorted({r["tokens"] for r in a}):
        row = {r["mode"]: r for r in a if r["tokens"] == n}
        def peer_ms(impl):
            r = next((x for x in apeer if x["kind"] == "peer_attn" and x["impl"] == impl and x["tokens"] == n), None)
            return r["ms"] if r else float("nan")
        sd, fl = peer_ms("sdpa_dense_causal"), peer_ms("flex_dms_mask")
        d = row.get("dms", {}); w = row.get("dms_walk_all", {}); de = row.get("dense", {})
        ms = d.get("ms", float("nan")); ms_sync = row.get("dms_mma_sync", {}).get("ms", float("nan"))
        ms_ws = row.get("dms_ws", {}).get("ms", float("nan"))
        print(f"  {n:>6} {sd:>9.2f}ms {fl:>8.2f}ms {ms:>7.2f}ms {ms_ws:>7.2f}ms {ms_sync:>7.2f}ms {w.get('ms', float('nan')):>7.2f}ms"
              f" {de.get('ms', float('nan')):>9.2f}ms {sd / ms:>7.2f}x {fl / ms:>7.2f}x"
              f" {d.get('visible_share', float('nan')):>8.3f} {d.get('tflops', float('nan')):>12.1f}")
pg = [x for x in ours if x["kind"] == "prefill_gemm"]
if pg:
    print("prefill GEMMs through the backend's linear layer (fraction of the measured bf16 GEMM rate):")
    for r in pg:
        print(f"  {r['shape']:<8} m={r['m']} {r['ms']:>8.3f} ms {r['tflops']:>6.0f} TFLOP/s {100 * r['ceiling_fraction']:>4.0f}%")
bd = [x for x in batch if x["kind"] == "batch_decode"]
if bd:
    print("batched decode, 8K context per stream (aggregate tokens/s; DMS vs the same model with a dense cache):")
    for S in sorted({x["streams"] for x in bd}):
        d = next((x for x in bd if x["streams"] == S and x["config"] == "dms"), {})
        e = next((x for x in bd if x["streams"] == S and x["config"] == "dense"), {})
        fmt = lambda r: (f"{r['tokens_per_s']:>8.0f} tok/s {r['ms_per_step']:>7.2f} ms KV {r['kv_read_GB_per_step']:>6.2f} GB"
                         if r.get("fits") else "  does not fit" + " " * 22)
        ratio = d["tokens_per_s"] / e["tokens_per_s"] if d.get("fits") and e.get("fits") else float("nan")
        print(f"  {S:>3} streams  dms {fmt(d)}   dense {fmt(e)}   {ratio:.2f}x")
cap = [x for x in batch if x["kind"] == "capacity"]
if cap:
    c = {x["config"]: x for x in cap}
    line = "  ".join(f"{k}: {v.get('streams_fit', 0)} streams ({v.get('blocks_per_stream', 0)} blocks each of {v.get('pool_blocks', 0)})"
                     for k, v in c.items())
    r = (c["dms"]["streams_fit"] / c["dense"]["streams_fit"]) if "dms" in c and "dense" in c and c["dense"].get("streams_fit") else float("nan")
    print(f"32K-context streams that fit (same KV pool bytes): {line}  -> {r:.1f}x")
if server:
    run = server["runs"][0] if server.get("runs") else server
    tp = (run.get("tpot") or {}).get("p50")
    dms32 = next((x for x in bd if x["streams"] == 32 and x["config"] == "dms" and x.get("fits")), None)
    if tp:
        agg = 32 / tp
        eng = dms32["tokens_per_s"] if dms32 else float("nan")
        print(f"through dms-server, 32 streams: client TPOT p50 {tp * 1e3:.2f} ms -> {agg:.0f} tok/s aggregate; "
              f"engine alone {eng:.0f} tok/s: {agg / eng:.2f}x; completed {run.get('completed')}/{run.get('launched')}")
        steady = (run.get("throughput") or {}).get("steady_decode_tokens_per_s")
        if steady:
            print(f"through dms-server, 32 streams, while all decode: {steady:.0f} tok/s seen by the clients "
                  f"({run['throughput']['steady_window_s']:.1f} s window); engine alone {eng:.0f} tok/s: {steady / eng:.2f}x")
for r in (x for x in oneshot if x["kind"] == "ttft_oneshot"):
    c = pick(ours, "ttft", "tokens", r["tokens"])
    if c:
        print(f"prefill {r['tokens']} tokens in one step {r['ms']:.1f} ms, in chunks of 8192 {c['ms']:.1f} ms: "
              f"chunked/one-shot {c['ms'] / r['ms']:.2f}x")
m1 = pick(oneshot, "memory")
if m1:
    print(f"one-shot run peak device memory {m1['peak_used_GB']:.2f} GB")
PY

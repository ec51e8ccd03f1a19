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
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="$root/.carry/gpu"
out="${OUT:-$bundle/logs}"
prompts="${PROMPTS:-4096,8192,16384,32768}"
contexts="${CONTEXTS:-4096,16384}"
steps="${STEPS:-64}"
model="${MODEL_DIR:-/tmp/dms-qwen3-8b}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"

[ "${1:-}" = run ] || { echo "usage: scripts/gpu-bench.sh run" >&2; exit 2; }

if [ ! -f "$model/config.json" ]; then
  timeout 150 "$bundle/bin/dms-engine" make-model --out "$model" --preset qwen3-8b --evict-rate 0.875
fi
timeout 300 "$bundle/bin/dms-cuda-bench" --model "$model" --prompts "$prompts" \
  --decode-contexts "$contexts" --decode-steps "$steps" | tee "$out/bench-dms.jsonl" || true

PYTHONUNBUFFERED=1 timeout 180 python3 - "$model" "$prompts" "$contexts" "$steps" <<'PY' | tee "$out/bench-hf.jsonl" || true
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

# Attention peers (issue 6): one layer of Qwen3-8B heads (32 query, 8 KV,
# head_dim 128), bf16, one fresh chunk: PyTorch SDPA dense causal, and
# FlexAttention with the DMS mask (window 512, each key marked with
# probability 0.875: visible iff causal and (within the window or unmarked)),
# the approach of NVIDIA Model-Optimizer. Only the attention call is timed
# (the block mask is built once per length, outside the timing).
PYTHONUNBUFFERED=1 timeout 240 python3 - "$prompts" <<'PY' | tee "$out/bench-attn-peer.jsonl" || true
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

python3 - "$out/bench-dms.jsonl" "$out/bench-hf.jsonl" "$out/bench-attn-peer.jsonl" <<'PY' | tee "$out/bench-table.txt"
import json, sys
def load(p):
    try:
        return [json.loads(l) for l in open(p) if l.startswith("{")]
    except OSError:
        return []
ours, peer, apeer = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
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
    print(f"  {'tokens':>6} {'sdpa dense':>11} {'flex DMS':>10} {'ours dms':>9} {'walk all':>9} {'ours dense':>11}"
          f" {'vs sdpa':>8} {'vs flex':>8} {'visible':>8} {'TFLOP/s vis':>12}")
    for n in sorted({r["tokens"] for r in a}):
        row = {r["mode"]: r for r in a if r["tokens"] == n}
        def peer_ms(impl):
            r = next((x for x in apeer if x["kind"] == "peer_attn" and x["impl"] == impl and x["tokens"] == n), None)
            return r["ms"] if r else float("nan")
        sd, fl = peer_ms("sdpa_dense_causal"), peer_ms("flex_dms_mask")
        d = row.get("dms", {}); w = row.get("dms_walk_all", {}); de = row.get("dense", {})
        ms = d.get("ms", float("nan"))
        print(f"  {n:>6} {sd:>9.2f}ms {fl:>8.2f}ms {ms:>7.2f}ms {w.get('ms', float('nan')):>7.2f}ms"
              f" {de.get('ms', float('nan')):>9.2f}ms {sd / ms:>7.2f}x {fl / ms:>7.2f}x"
              f" {d.get('visible_share', float('nan')):>8.3f} {d.get('tflops', float('nan')):>12.1f}")
pg = [x for x in ours if x["kind"] == "prefill_gemm"]
if pg:
    print("prefill GEMMs through the backend's linear layer (fraction of the measured bf16 GEMM rate):")
    for r in pg:
        print(f"  {r['shape']:<8} m={r['m']} {r['ms']:>8.3f} ms {r['tflops']:>6.0f} TFLOP/s {100 * r['ceiling_fraction']:>4.0f}%")
PY

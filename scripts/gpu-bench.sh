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

python3 - "$out/bench-dms.jsonl" "$out/bench-hf.jsonl" <<'PY' | tee "$out/bench-table.txt"
import json, sys
def load(p):
    try:
        return [json.loads(l) for l in open(p) if l.startswith("{")]
    except OSError:
        return []
ours, peer = load(sys.argv[1]), load(sys.argv[2])
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
    print("prefill attention, tensor cores, one fresh chunk, Qwen3-8B heads (TFLOP/s on the visible pairs):")
    for r in a:
        print(f"  {r['tokens']:>6} tok {r['mode']:<5} min_blocks={r['min_blocks']} {r['ms']:>8.2f} ms "
              f"visible {r['visible_share']:.3f} {r['tflops']:>6.1f} TFLOP/s {'' if r['error'] == 'no error' else r['error']}")
PY

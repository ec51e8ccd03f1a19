#!/usr/bin/env python3
"""The ideal dense decode step: the peer of batched DMS decode (docs/batch-decode.md).

Qwen3-8B shapes (or a checkpoint's config.json), bf16, random weights. One
decode step of S streams at C tokens of context is, per layer,

    qkv = x @ Wqkv;  o = scaled_dot_product_attention(q, K, V, enable_gqa=True)
    x = o @ Wo;  g, u = (x @ Wgu).chunk(2);  x = (silu(g) * u) @ Wd

over a contiguous dense bf16 cache K, V [S, Hkv, C, hd] per layer, then the LM
head, all captured in one CUDA graph. Norms, RoPE, the KV append and sampling
are left out: this is the floor a dense engine running at bandwidth could
reach, not a full model. Prints one JSON line per (streams, context): the
median step, tokens/s, the bytes it reads (weights + KV) and their share of
the measured copy bandwidth.

    python3 scripts/peer_dense_decode.py [--config config.json] [--shapes 1x8192,8x8192,...]
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F

QWEN3_8B = dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                intermediate_size=12288, num_hidden_layers=36, vocab_size=151936)


def copy_bandwidth():
    """Device-to-device copy rate in bytes/s (read + write counted)."""
    n = 1 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        b.copy_(a)
    end.record()
    torch.cuda.synchronize()
    return 2 * n * 10 / (start.elapsed_time(end) / 1e3)


class Weights:
    def __init__(self, c):
        d, hq, hkv, hd, i = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
                             c["head_dim"], c["intermediate_size"])
        mk = lambda r, k: torch.randn(r, k, device="cuda", dtype=torch.bfloat16) * 0.02
        self.layers = [dict(qkv=mk(d, (hq + 2 * hkv) * hd), o=mk(hq * hd, d), gu=mk(d, 2 * i), down=mk(i, d))
                       for _ in range(c["num_hidden_layers"])]
        self.lm_head = mk(d, c["vocab_size"])
        self.bytes = sum(t.numel() * 2 for l in self.layers for t in l.values()) + self.lm_head.numel() * 2


def run_shape(c, w, streams, context, steps, bw):
    hq, hkv, hd, L = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["num_hidden_layers"]
    kv_bytes = 2 * L * streams * hkv * context * hd * 2
    free, _ = torch.cuda.mem_get_info()
    if kv_bytes > free - (2 << 30):
        return dict(kind="peer_dense_decode", streams=streams, context=context, fits=False,
                    kv_GB=kv_bytes / 1e9)
    caches = [(torch.randn(streams, hkv, context, hd, device="cuda", dtype=torch.bfloat16),
               torch.randn(streams, hkv, context, hd, device="cuda", dtype=torch.bfloat16)) for _ in range(L)]
    x0 = torch.randn(streams, c["hidden_size"], device="cuda", dtype=torch.bfloat16)

    def step():
        x = x0
        for layer, (k, v) in zip(w.layers, caches):
            q = (x @ layer["qkv"])[:, :hq * hd].view(streams, hq, 1, hd)
            o = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            x = o.reshape(streams, hq * hd) @ layer["o"]
            g, u = (x @ layer["gu"]).chunk(2, dim=-1)
            x = (F.silu(g) * u) @ layer["down"]
        return x @ w.lm_head

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    times = []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    ms = statistics.median(times)
    read = w.bytes + kv_bytes
    del caches, graph
    torch.cuda.empty_cache()
    return dict(kind="peer_dense_decode", streams=streams, context=context, fits=True, ms_per_step=round(ms, 3),
                tokens_per_s=round(streams * 1e3 / ms, 1), weights_GB=round(w.bytes / 1e9, 2),
                kv_GB=round(kv_bytes / 1e9, 2), bytes_bw_fraction=round(read / (ms * 1e-3) / bw, 3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="a checkpoint's config.json (default: Qwen3-8B shapes)")
    ap.add_argument("--shapes", default="1x8192,8x8192,32x8192,48x8192,64x8192,128x8192,16x32768",
                    help="streams x context, comma separated")
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    c = dict(QWEN3_8B)
    if a.config:
        c.update({k: v for k, v in json.load(open(a.config)).items() if k in QWEN3_8B})
    torch.manual_seed(0)
    bw = copy_bandwidth()
    w = Weights(c)
    print(json.dumps(dict(kind="peer_info", torch=torch.__version__, device=torch.cuda.get_device_name(),
                          copy_GBps=round(bw / 1e9, 1), weights_GB=round(w.bytes / 1e9, 2))), flush=True)
    for shape in a.shapes.split(","):
        streams, context = map(int, shape.split("x"))
        print(json.dumps(run_shape(c, w, streams, context, a.steps, bw)), flush=True)


if __name__ == "__main__":
    main()

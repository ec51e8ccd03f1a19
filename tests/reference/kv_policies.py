#!/usr/bin/env python3
"""Float64 PyTorch reference of the training-free KV policies (docs/kv-policies.md)
and the golden files the C++ tests check against (tests/data/kv_policies/).

Written from the policy definitions (kvpress's KnormPress, SnapKVPress,
StreamingLLMPress and ExpectedAttentionPress, as docs/kv-policies.md states
them), with whole-tensor torch operations where the C++ code loops, so the two
are independent:

  * random_cases.json + random_inputs.f32: the scores and kept positions of one
    KV group on random float32 tensors, for every policy, several compression
    ratios, protected tails, small and default parameters, and exact ties;
  * checkpoint_cases.json: a 160-token prompt prefilled by the tiny golden
    checkpoints (plain Qwen3, and DMS checkpoints served with a dense cache):
    the scores of every (layer, KV head), the kept positions for several
    settings, and the greedy tokens decoded from the pruned cache;
  * dense-<model>.f32: logits of a DMS checkpoint run with a dense cache
    (decisions ignored, what `--kv-policy dense` serves) over its golden tokens.

Deterministic (fixed seeds). A prompt seed is skipped when a kept/dropped
boundary or a greedy choice is so close to a tie that float32 arithmetic could
legitimately decide otherwise.

  python3 tests/reference/kv_policies.py --out-dir tests/data/kv_policies

Needs torch (safetensors optional: a minimal reader stands in for it).
"""

import argparse
import array
import dataclasses
import json
import math
import os
import struct
import sys
import types

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
F64 = torch.float64


def _install_safetensors_shim():
    """dms_reference imports safetensors.torch.load_file; where the package is
    missing, read the format directly (little-endian header + raw tensors)."""
    try:
        import safetensors.torch  # noqa: F401
        return
    except ImportError:
        pass
    dtypes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}

    def load_file(path):
        with open(path, "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            raw = bytearray(data[8 + n + a:8 + n + b])
            t = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]) if raw else \
                torch.empty(0, dtype=dtypes[info["dtype"]])
            out[name] = t.reshape(info["shape"]).clone()
        return out

    st = types.ModuleType("safetensors")
    st_torch = types.ModuleType("safetensors.torch")
    st_torch.load_file = load_file
    st.torch = st_torch
    sys.modules["safetensors"] = st
    sys.modules["safetensors.torch"] = st_torch


_install_safetensors_shim()
import dms_reference as ref  # noqa: E402

POLICIES = ["knorm", "snapkv", "streaming", "expected-attention"]
DEFAULT_PARAMS = {"window": 64, "pool_kernel": 5, "sinks": 4, "future_positions": 512}
MIN_REL_SCORE_MARGIN = 2e-5   # gap at the kept/dropped boundary / max |score| of the head
MIN_GREEDY_MARGIN = 5e-4      # top-1 minus top-2 logit of every greedy step
MAX_ATTEMPTS = 40


# ---------------------------------------------------------------------------
# The policies on one KV group. keys/values [n, hd] (RoPE applied to keys),
# positions [n] ints (ascending), float64 tensors.
# ---------------------------------------------------------------------------

def keep_count(n, ratio):
    return max(1, int(n * (1 - ratio)))  # kvpress ScorerPress.compress


def forced(policy, pos, T, protect_from, params):
    if pos >= protect_from:
        return True
    if policy == "snapkv":
        return pos >= T - params["window"]
    if policy in ("streaming", "expected-attention"):
        return pos < params["sinks"]
    return False


def select_kept(policy, positions, scores, T, ratio, protect_from, params):
    """Kept slot indices (ascending): forced ones, then the best scores
    (ties: lower position first), up to keep_count(n, ratio) in all."""
    n = len(positions)
    must = [i for i in range(n) if forced(policy, positions[i], T, protect_from, params)]
    rest = [i for i in range(n) if i not in set(must)]
    rest.sort(key=lambda i: (-scores[i], positions[i]))
    room = max(0, keep_count(n, ratio) - len(must))
    return sorted(must + rest[:room])


def boundary_margin(policy, positions, scores, T, ratio, protect_from, params):
    """Relative gap between the last kept and the first dropped score (inf when
    nothing is decided by score)."""
    n = len(positions)
    must = {i for i in range(n) if forced(policy, positions[i], T, protect_from, params)}
    rest = sorted((scores[i] for i in range(n) if i not in must), reverse=True)
    room = max(0, keep_count(n, ratio) - len(must))
    if room == 0 or room >= len(rest):
        return math.inf
    scale = max(abs(s) for s in rest) or 1.0
    return (rest[room - 1] - rest[room]) / scale


def knorm_scores(keys):
    return -keys.norm(dim=-1)


def streaming_scores(positions):
    return torch.tensor(positions, dtype=F64)


def snapkv_scores(keys, positions, queries, query_positions, T, params):
    """queries [m, g, hd] (RoPE applied) at query_positions: the last m prompt
    positions. Window and later keys get 0 (forced)."""
    n = keys.shape[0]
    pos = torch.tensor(positions)
    qpos = torch.tensor(query_positions)
    earlier = pos < T - params["window"]
    out = torch.zeros(n, dtype=F64)
    if int(earlier.sum()) == 0 or queries.shape[0] == 0:
        return out
    logits = torch.einsum("mgd,nd->gmn", queries, keys) / math.sqrt(keys.shape[1])
    logits = logits.masked_fill(pos[None, None, :] > qpos[None, :, None], float("-inf"))
    attn = torch.softmax(logits, dim=-1)[:, :, earlier]        # [g, m, ne]
    mean = attn.mean(dim=1)                                       # [g, ne]
    k = params["pool_kernel"]
    pooled = F.avg_pool1d(mean[:, None, :], kernel_size=k, padding=k // 2, stride=1)[:, 0, :]
    out[earlier] = pooled.mean(dim=0)
    return out


def average_rotation(T, future, hd, theta):
    """Mean over positions [T, T + future) of the RoPE matrix R(p) with
    R(p) x = x * cos + rotate_half(x) * sin (rotate-half layout), built as a
    full [hd, hd] matrix."""
    cos, sin = ref.rope_cos_sin(torch.arange(T, T + future), hd, theta)  # [F, hd]
    eye = torch.eye(hd, dtype=F64)
    P = torch.zeros(hd, hd, dtype=F64)
    P[hd // 2:, :hd // 2] = torch.eye(hd // 2, dtype=F64)
    P[:hd // 2, hd // 2:] = -torch.eye(hd // 2, dtype=F64)
    R = cos[:, None, :] * eye + sin[:, None, :] * P               # [F, hd, hd]
    return R.mean(dim=0)


def expected_attention_scores(keys, positions, values, queries_pre, T, theta, params):
    """queries_pre [m, g, hd]: the pre-RoPE queries of the prompt positions
    >= sinks. Sinks get 0 (forced)."""
    n, hd = keys.shape
    pos = torch.tensor(positions)
    live = pos >= params["sinks"]
    out = torch.zeros(n, dtype=F64)
    if int(live.sum()) == 0 or queries_pre.shape[0] == 0:
        return out
    mu = queries_pre.mean(dim=0)                                  # [g, hd]
    centered = queries_pre - mu
    cov = torch.einsum("mgi,mgj->gij", centered, centered) / queries_pre.shape[0]
    R = average_rotation(T, params["future_positions"], hd, theta)
    mu = mu @ R.T
    cov = R @ cov @ R.T
    k = keys[live]
    z = (k @ mu.T).T / math.sqrt(hd) + torch.einsum("ni,gij,nj->gn", k, cov, k) / hd / 2
    p = torch.softmax(z, dim=-1).mean(dim=0)
    out[live] = p * values[live].norm(dim=-1)
    return out


def policy_scores(policy, keys, values, positions, window_q, window_pos, queries_pre, T, theta,
                  params):
    if policy == "knorm":
        return knorm_scores(keys)
    if policy == "streaming":
        return streaming_scores(positions)
    if policy == "snapkv":
        return snapkv_scores(keys, positions, window_q, window_pos, T, params)
    if policy == "expected-attention":
        return expected_attention_scores(keys, positions, values, queries_pre, T, theta, params)
    raise ValueError(policy)


def scores_for_json(policy, scores, positions, T, protect_from, params):
    """Forced entries carry no meaningful score: null."""
    return [None if forced(policy, p, T, protect_from, params) else float(s)
            for s, p in zip(scores.tolist(), positions)]


# ---------------------------------------------------------------------------
# Random tensors.
# ---------------------------------------------------------------------------

class Blob:
    """float32 arrays appended to one little-endian file, addressed by offset."""

    def __init__(self):
        self.data = array.array("f")

    def add(self, t):
        t = t.to(torch.float32).contiguous()
        off = len(self.data)
        self.data.extend(t.flatten().tolist())
        return {"offset": off, "shape": list(t.shape)}


RANDOM_CASES = [
    # name, policy, n, hd, g, ratio, protect (tail tokens), params override, special
    ("knorm-half", "knorm", 48, 16, 2, 0.5, 0, {}, None),
    ("knorm-tail", "knorm", 48, 16, 2, 0.75, 8, {}, None),
    ("knorm-ties", "knorm", 40, 8, 1, 0.5, 0, {}, "ties"),
    ("knorm-keep-one", "knorm", 20, 8, 1, 0.99, 0, {}, None),
    ("knorm-ratio-zero", "knorm", 20, 8, 1, 0.0, 0, {}, None),
    ("streaming-half", "streaming", 48, 16, 2, 0.5, 0, {}, None),
    ("streaming-tail-over-budget", "streaming", 40, 8, 2, 0.9, 12, {}, None),
    ("snapkv-small-window", "snapkv", 64, 16, 2, 0.5, 0, {"window": 8}, None),
    ("snapkv-gqa4-tail", "snapkv", 80, 16, 4, 0.7, 12, {"window": 8, "pool_kernel": 3}, None),
    ("snapkv-default-window", "snapkv", 160, 16, 2, 0.5, 0, {}, None),
    ("snapkv-window-over-budget", "snapkv", 64, 8, 2, 0.9, 0, {"window": 8}, None),
    ("expected-attention-small", "expected-attention", 64, 16, 2, 0.5, 0, {"future_positions": 32}, None),
    ("expected-attention-default", "expected-attention", 96, 16, 4, 0.6, 10, {}, None),
    ("expected-attention-ties", "expected-attention", 40, 8, 2, 0.5, 0, {"future_positions": 16}, "ties"),
]


def random_case(blob, name, policy, n, hd, g, ratio, protect, override, special, seed):
    gen = torch.Generator().manual_seed(seed)
    params = dict(DEFAULT_PARAMS, **override)
    T = n
    positions = list(range(n))
    protect_from = T - min(protect, T)
    theta = 10000.0
    keys = torch.randn(n, hd, generator=gen) * (1.0 + torch.rand(n, 1, generator=gen))
    values = torch.randn(n, hd, generator=gen)
    if special == "ties":
        # A few distinct entries repeated: many exact ties at the boundary.
        base_k = torch.randn(4, hd, generator=gen)
        base_v = torch.randn(4, hd, generator=gen)
        idx = torch.tensor([(j * 7) % 4 for j in range(n)])
        keys, values = base_k[idx], base_v[idx]
    keys = keys.to(torch.float32)
    values = values.to(torch.float32)
    m = min(params["window"], T)
    window_q = (torch.randn(m, g, hd, generator=gen) * 1.5).to(torch.float32)
    window_pos = list(range(T - m, T))
    m_pre = max(0, T - params["sinks"])
    queries_pre = (torch.randn(m_pre, g, hd, generator=gen) * 0.8 +
                   torch.randn(1, g, hd, generator=gen)).to(torch.float32)
    scores = policy_scores(policy, keys.to(F64), values.to(F64), positions, window_q.to(F64),
                           window_pos, queries_pre.to(F64), T, theta, params)
    kept = select_kept(policy, positions, scores.tolist(), T, ratio, protect_from, params)
    margin = boundary_margin(policy, positions, scores.tolist(), T, ratio, protect_from, params)
    if special != "ties" and margin < 1e-9:
        raise RuntimeError(f"{name}: unintended near-tie at the boundary ({margin:.2e})")
    return {
        "name": name, "policy": policy, "num_tokens": T, "head_dim": hd, "group": g,
        "compression_ratio": ratio, "protect_from": protect_from, "params": params,
        "rope_theta": theta, "positions": positions,
        "keys": blob.add(keys), "values": blob.add(values),
        "window_queries": blob.add(window_q), "window_positions": window_pos,
        "queries_pre_rope": blob.add(queries_pre), "queries_pre_rope_from": params["sinks"],
        "scores": scores_for_json(policy, scores, positions, T, protect_from, params),
        "kept_positions": [positions[i] for i in kept],
        "boundary_margin": margin if math.isfinite(margin) else None,
    }


# ---------------------------------------------------------------------------
# Tiny checkpoints: prefill, score, prune, decode greedily from the pruned cache.
# ---------------------------------------------------------------------------

def layer_inputs(cfg, w, layer, x, positions):
    """Like ref.attention_inputs, but also returns the pre-RoPE queries (after
    q_norm and the single-neuron zeroing: the queries the model attends with)."""
    p = f"model.layers.{layer}."
    T, hd, g = x.shape[0], cfg.head_dim, cfg.group
    h = ref.rms_norm(x, w[p + "input_layernorm.weight"], cfg.rms_norm_eps)
    q = ref.linear(w, p + "self_attn.q_proj", h).view(T, cfg.num_heads, hd)
    k = ref.linear(w, p + "self_attn.k_proj", h).view(T, cfg.num_kv_heads, hd)
    v = ref.linear(w, p + "self_attn.v_proj", h).view(T, cfg.num_kv_heads, hd)
    q = ref.rms_norm(q, w[p + "self_attn.q_norm.weight"], cfg.rms_norm_eps)
    k = ref.rms_norm(k, w[p + "self_attn.k_norm.weight"], cfg.rms_norm_eps)
    first = torch.arange(cfg.num_kv_heads) * g
    neuron = cfg.dms and not cfg.separate_alpha
    if neuron:
        q = q.clone()
        q[:, first, hd - 1] = 0.0
    q_pre = q.clone()
    cos, sin = ref.rope_cos_sin(positions, hd, cfg.rope_theta)
    q, k = ref.apply_rope(q, cos, sin), ref.apply_rope(k, cos, sin)
    if neuron:
        q[:, first, hd - 1] = 0.0
    # Same tensors as the reference's own function.
    q2, k2, v2, _ = ref.attention_inputs(cfg, w, layer, x, positions)
    assert torch.equal(q, q2) and torch.equal(k, k2) and torch.equal(v, v2)
    return q_pre, q, k, v


def dense_attention(cfg, q, k, v, q_positions, k_positions):
    """q [m,Hq,hd] at q_positions over cached k/v [n,Hkv,hd] at k_positions: j <= i."""
    out = torch.empty_like(q)
    mask = torch.tensor(k_positions)[None, :] <= torch.tensor(q_positions)[:, None]
    for qh in range(cfg.num_heads):
        kvh = qh // cfg.group
        s = (q[:, qh] @ k[:, kvh].T) / math.sqrt(cfg.head_dim)
        out[:, qh] = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ v[:, kvh]
    return out


def prefill(cfg, w, tokens):
    """Dense prefill: logits [P, V] and per layer (q_pre, q, k, v)."""
    P = len(tokens)
    positions = torch.arange(P)
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    layers = []
    for layer in range(cfg.num_layers):
        q_pre, q, k, v = layer_inputs(cfg, w, layer, x, positions)
        layers.append((q_pre, q, k, v))
        attn = dense_attention(cfg, q, k, v, list(range(P)), list(range(P)))
        x = ref.finish_layer(cfg, w, layer, x, attn)
    return ref.lm_head(cfg, w, x), layers


def decode(cfg, w, caches, first_token, start, steps):
    """Greedy decode from per-(layer, head) caches [(positions, k [n,hd], v [n,hd])]:
    returns the tokens (first_token included), the smallest top-2 margin and
    the logits of every step [steps - 1, V] (step s fed tokens[s] at start + s)."""
    tokens, margin, all_logits = [first_token], math.inf, []
    caches = [[(list(p), k.clone(), v.clone()) for (p, k, v) in layer] for layer in caches]
    for step in range(steps - 1):
        pos = start + step
        x = w["model.embed_tokens.weight"][torch.tensor([tokens[-1]])]
        for layer in range(cfg.num_layers):
            _, q, k, v = layer_inputs(cfg, w, layer, x, torch.tensor([pos]))
            attn = torch.empty_like(q)
            for h in range(cfg.num_kv_heads):
                cp, ck, cv = caches[layer][h]
                cp.append(pos)
                ck = torch.cat([ck, k[:, h]])
                cv = torch.cat([cv, v[:, h]])
                caches[layer][h] = (cp, ck, cv)
                for qh in range(h * cfg.group, (h + 1) * cfg.group):
                    s = (q[0, qh] @ ck.T) / math.sqrt(cfg.head_dim)
                    attn[0, qh] = torch.softmax(s, dim=-1) @ cv
            x = ref.finish_layer(cfg, w, layer, x, attn)
        logits = ref.lm_head(cfg, w, x)[0]
        all_logits.append(logits)
        top2 = logits.topk(2).values
        margin = min(margin, (top2[0] - top2[1]).item())
        tokens.append(int(logits.argmax()))
    return tokens, margin, torch.stack(all_logits)


CHECKPOINTS = [
    # model, how it is served
    ("qwen3-plain", "plain checkpoint"),
    ("dms-neuron-w1-gqa2-tied", "DMS checkpoint served dense (--kv-policy dense): decisions ignored, "
                                "the decision query element still zeroed"),
    ("dms-proj-w16-gqa4", "DMS checkpoint served dense (--kv-policy dense), GQA 4"),
]
SETTINGS = [(0.5, 0), (0.75, 24), (0.3, 100)]  # (compression_ratio, protect_tokens)
PROMPT_LEN, GEN_LEN = 160, 12
LOGIT_STEPS = 4  # logits kept of the first decode steps (tied models repeat a token: check numbers too)


def checkpoint_case(blob, models_dir, name, served, log):
    cfg, w = ref.load_model(os.path.join(models_dir, name))
    cfg = dataclasses.replace(cfg, disable_eviction=True)  # a dense cache: decisions ignored
    params = dict(DEFAULT_PARAMS)
    P = PROMPT_LEN
    positions = list(range(P))
    for attempt in range(MAX_ATTEMPTS):
        seed = 1000 + attempt
        gen = torch.Generator().manual_seed(seed)
        # Distinct tokens: a repeated token has the same layer-0 key up to its
        # rotation, so knorm would tie it exactly and float32 rounding would decide.
        prompt = torch.randperm(cfg.vocab_size, generator=gen)[:P].tolist()
        logits, layers = prefill(cfg, w, prompt)
        top2 = logits[-1].topk(2).values
        worst_greedy = (top2[0] - top2[1]).item()
        first = int(logits[-1].argmax())
        scores = {}
        for policy in POLICIES:
            per_layer = []
            for layer, (q_pre, q, k, v) in enumerate(layers):
                per_head = []
                for h in range(cfg.num_kv_heads):
                    heads = slice(h * cfg.group, (h + 1) * cfg.group)
                    wq = q[P - min(params["window"], P):, heads]
                    per_head.append(policy_scores(
                        policy, k[:, h], v[:, h], positions, wq,
                        list(range(P - wq.shape[0], P)), q_pre[params["sinks"]:, heads], P,
                        cfg.rope_theta, params))
                per_layer.append(per_head)
            scores[policy] = per_layer
        worst_score = math.inf
        worst_by_policy = {}
        settings = []
        for policy in POLICIES:
            for ratio, protect in SETTINGS:
                protect_from = P - min(protect, P)
                kept, caches = [], []
                for layer, (q_pre, q, k, v) in enumerate(layers):
                    kept_l, cache_l = [], []
                    for h in range(cfg.num_kv_heads):
                        s = scores[policy][layer][h].tolist()
                        m = boundary_margin(policy, positions, s, P, ratio, protect_from, params)
                        worst_score = min(worst_score, m)
                        worst_by_policy[policy] = min(worst_by_policy.get(policy, math.inf), m)
                        idx = select_kept(policy, positions, s, P, ratio, protect_from, params)
                        kept_l.append(idx)
                        cache_l.append((idx, k[idx, h], v[idx, h]))
                    kept.append(kept_l)
                    caches.append(cache_l)
                tokens, margin, step_logits = decode(cfg, w, caches, first, P, GEN_LEN)
                worst_greedy = min(worst_greedy, margin)
                settings.append({"policy": policy, "compression_ratio": ratio, "protect_tokens": protect,
                                 "kept_positions": kept, "greedy_tokens": tokens,
                                 "min_greedy_top2_margin": margin,
                                 "decode_logits": step_logits[:LOGIT_STEPS]})
        ok = worst_score >= MIN_REL_SCORE_MARGIN and worst_greedy >= MIN_GREEDY_MARGIN
        by_policy = ", ".join(f"{p} {m:.1e}" for p, m in worst_by_policy.items())
        log(f"{name}: prompt seed {seed}: min relative score margin {worst_score:.2e} ({by_policy}), "
            f"min greedy margin {worst_greedy:.2e}{'' if ok else ' (rejected)'}")
        if ok:
            break
    else:
        raise RuntimeError(f"{name}: no prompt seed in {MAX_ATTEMPTS} attempts clears the margins")
    for st in settings:
        st["decode_logits"] = blob.add(st["decode_logits"])
    return {
        "model": name, "served": served, "prompt_seed": seed, "prompt_tokens": prompt,
        "params": params, "dense_first_token": first,
        "scores": {p: [[scores_for_json(p, s, positions, P, P, params) for s in layer]
                       for layer in scores[p]] for p in POLICIES},
        "settings": settings,
        "min_relative_score_margin": worst_score,
        "min_greedy_top2_margin": worst_greedy,
    }


DENSE_MODELS = ["dms-neuron-w1-gqa2-tied", "dms-proj-w16-gqa4"]


def dense_logits(models_dir, name, out_dir, log):
    """Logits of a DMS checkpoint with a dense cache over its golden tokens."""
    model_dir = os.path.join(models_dir, name)
    cfg, w = ref.load_model(model_dir)
    with open(os.path.join(model_dir, "golden.json")) as f:
        tokens = json.load(f)["tokens"]
    dense = ref.forward(dataclasses.replace(cfg, disable_eviction=True), w, tokens)["logits"]
    dms = ref.forward(cfg, w, tokens)["logits"]
    file = f"dense-{name}.f32"
    with open(os.path.join(out_dir, file), "wb") as f:
        array.array("f", dense.to(torch.float32).flatten().tolist()).tofile(f)
    diff = (dense - dms).abs().max().item()
    log(f"{name}: dense logits [{len(tokens)}, {cfg.vocab_size}], max |dense - DMS| = {diff:.3f}")
    return {"model": name, "logits_file": file, "logits_shape": [len(tokens), cfg.vocab_size],
            "max_abs_diff_vs_dms": diff}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--models-dir", default=os.path.join(HERE, "..", "data", "models"))
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))

    def log(msg):
        print(msg, flush=True)

    blob = Blob()
    cases = [random_case(blob, *c, seed=100 + i) for i, c in enumerate(RANDOM_CASES)]
    with open(os.path.join(args.out_dir, "random_inputs.f32"), "wb") as f:
        blob.data.tofile(f)
    with open(os.path.join(args.out_dir, "random_cases.json"), "w") as f:
        json.dump({"inputs_file": "random_inputs.f32", "cases": cases}, f)
    log(f"random cases: {len(cases)}, {len(blob.data)} floats of inputs")

    failed = 0
    checkpoints = []
    logits_blob = Blob()
    for name, served in CHECKPOINTS:
        try:
            checkpoints.append(checkpoint_case(logits_blob, args.models_dir, name, served, log))
        except Exception as e:  # report every model, then fail
            failed += 1
            log(f"{name}: FAILED: {type(e).__name__}: {e}")
    dense = []
    for name in DENSE_MODELS:
        try:
            dense.append(dense_logits(args.models_dir, name, args.out_dir, log))
        except Exception as e:
            failed += 1
            log(f"{name}: FAILED: {type(e).__name__}: {e}")
    with open(os.path.join(args.out_dir, "checkpoint_logits.f32"), "wb") as f:
        logits_blob.data.tofile(f)
    with open(os.path.join(args.out_dir, "checkpoint_cases.json"), "w") as f:
        json.dump({"prompt_len": PROMPT_LEN, "gen_len": GEN_LEN, "logit_steps": LOGIT_STEPS,
                   "logits_file": "checkpoint_logits.f32", "models": checkpoints,
                   "dense": dense, "torch": torch.__version__}, f)
    log(f"kv_policies: {'FAILED' if failed else 'ok'} (torch {torch.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

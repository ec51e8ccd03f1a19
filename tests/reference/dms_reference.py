"""Independent float64 PyTorch reference of /work/shared/spec/dms.md (Qwen3 + DMS).

Plain and readable on purpose: one teacher-forced pass over the whole sequence
with the dense visibility mask of spec section 3, everything in float64. It is
the source of the project's golden logits (make_golden_models.py) and is itself
cross-checked against Hugging Face transformers (crosscheck_hf.py) and against
an evicting-cache implementation (dms_incremental.py).

  python3 tests/reference/dms_reference.py MODEL_DIR 1 2 3 4   # prints decisions and logits

Only default RoPE is supported (a rope_scaling / rope_type other than default is
rejected with a clear error).
"""

import json
import math
import os
import sys
from dataclasses import dataclass

import torch
from safetensors.torch import load_file

F64 = torch.float64


@dataclass
class Config:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int  # Hq
    num_kv_heads: int  # Hkv
    head_dim: int  # hd
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    attention_bias: bool
    dms: bool  # False: plain Qwen3 (no dms_* key in config.json)
    alpha_scale: float = 100.0
    alpha_offset: float = 5.0
    window: int = 512  # W
    separate_alpha: bool = False  # True: projection variant
    alpha_per: str = "head"  # "head" or "layer"
    disable_eviction: bool = False

    @property
    def group(self):  # g = Hq / Hkv
        return self.num_heads // self.num_kv_heads


def parse_config(d):
    """config.json dict -> Config; raises ValueError naming the offending field."""
    rope = d.get("rope_parameters") or {}
    theta = d.get("rope_theta", rope.get("rope_theta"))
    if theta is None:
        raise ValueError("config.json: expected rope_theta (top level or in rope_parameters)")
    rope_type = rope.get("rope_type", "default")
    if d.get("rope_scaling") or rope_type != "default":
        raise ValueError("config.json: only default RoPE is supported")
    heads = d["num_attention_heads"]
    cfg = Config(
        vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
        intermediate_size=d["intermediate_size"], num_layers=d["num_hidden_layers"],
        num_heads=heads, num_kv_heads=d.get("num_key_value_heads", heads),
        head_dim=d.get("head_dim") or d["hidden_size"] // heads,
        rms_norm_eps=d["rms_norm_eps"], rope_theta=float(theta),
        tie_word_embeddings=d.get("tie_word_embeddings", False),
        attention_bias=d.get("attention_bias", False),
        dms=any(k.startswith("dms_") for k in d))
    if cfg.dms:
        cfg.alpha_scale = float(d.get("dms_alpha_scale", 100.0))
        cfg.alpha_offset = float(d.get("dms_initial_alpha_offset", 5.0))
        cfg.window = int(d.get("dms_window_size", 512))
        cfg.separate_alpha = bool(d.get("dms_separate_alpha", False))
        cfg.alpha_per = d.get("dms_alpha_per", "head")
        cfg.disable_eviction = bool(d.get("dms_disable_eviction", False))
        if cfg.alpha_per not in ("head", "layer"):
            raise ValueError("config.json: dms_alpha_per must be \"head\" or \"layer\"")
    if heads % cfg.num_kv_heads:
        raise ValueError("config.json: num_attention_heads must be a multiple of num_key_value_heads")
    return cfg


def load_model(model_dir):
    """Returns (Config, {name: float64 tensor}) from config.json + model.safetensors."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = parse_config(json.load(f))
    weights = {k: v.to(F64) for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    return cfg, weights


# ---------------------------------------------------------------------------
# Building blocks. Shapes: T tokens, D hidden, Hq/Hkv heads, hd head_dim.
# ---------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    # Normalizes over the last dimension.
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def linear(w, name, x):
    y = x @ w[name + ".weight"].T
    bias = w.get(name + ".bias")
    return y if bias is None else y + bias


def rope_cos_sin(positions, head_dim, theta):
    # positions [T] -> cos, sin [T, hd]; rotate-half layout (pairs i and i + hd/2).
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=F64) / head_dim)
    angles = positions.to(F64)[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    # x [T, H, hd]
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def attention_inputs(cfg, w, layer, x, positions):
    """Layer input x [T, D] at `positions` [T] -> q [T,Hq,hd], k/v [T,Hkv,hd] (after
    RoPE) and the raw decision logits [T, Hkv] (None for plain Qwen3)."""
    p = f"model.layers.{layer}."
    T, hd, g = x.shape[0], cfg.head_dim, cfg.group
    h = rms_norm(x, w[p + "input_layernorm.weight"], cfg.rms_norm_eps)
    q = linear(w, p + "self_attn.q_proj", h).view(T, cfg.num_heads, hd)
    k = linear(w, p + "self_attn.k_proj", h).view(T, cfg.num_kv_heads, hd)
    v = linear(w, p + "self_attn.v_proj", h).view(T, cfg.num_kv_heads, hd)
    q = rms_norm(q, w[p + "self_attn.q_norm.weight"], cfg.rms_norm_eps)
    k = rms_norm(k, w[p + "self_attn.k_norm.weight"], cfg.rms_norm_eps)

    logits = None
    first = torch.arange(cfg.num_kv_heads) * g  # query head h*g of each KV group
    if cfg.dms and cfg.separate_alpha:
        a = rms_norm(x, w[p + "self_attn.dms_proj_alpha_norm.weight"], cfg.rms_norm_eps)
        logits = (a @ w[p + "self_attn.dms_proj_alpha.weight"].T) * cfg.alpha_scale - cfg.alpha_offset
    elif cfg.dms:
        logits = q[:, first, hd - 1] * cfg.alpha_scale - cfg.alpha_offset
        q = q.clone()
        q[:, first, hd - 1] = 0.0  # this component never takes part in attention

    cos, sin = rope_cos_sin(positions, hd, cfg.rope_theta)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    if cfg.dms and not cfg.separate_alpha:
        q[:, first, hd - 1] = 0.0  # RoPE mixed element hd/2-1 into it: zero again
    return q, k, v, logits


def decide(cfg, logits, T):
    """Decision logits [T, Hkv] -> d [T, Hkv] bool (1 = evict the PREVIOUS token)."""
    if logits is None or cfg.disable_eviction:
        return torch.zeros(T, cfg.num_kv_heads, dtype=torch.bool)
    d = logits > 0
    if cfg.alpha_per == "layer":
        d = d[:, :1].expand_as(d).clone()
    return d


def finish_layer(cfg, w, layer, x, attn):
    """Residual adds: attn [T, Hq, hd] -> o_proj, then the MLP. Returns new x [T, D]."""
    p = f"model.layers.{layer}."
    x = x + linear(w, p + "self_attn.o_proj", attn.reshape(x.shape[0], -1))
    h2 = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
    gate = linear(w, p + "mlp.gate_proj", h2)
    up = linear(w, p + "mlp.up_proj", h2)
    return x + linear(w, p + "mlp.down_proj", torch.nn.functional.silu(gate) * up)


def lm_head(cfg, w, x):
    h = rms_norm(x, w["model.norm.weight"], cfg.rms_norm_eps)
    head = w["model.embed_tokens.weight"] if cfg.tie_word_embeddings else w["lm_head.weight"]
    return h @ head.T


# ---------------------------------------------------------------------------
# Spec section 3 (visibility) and section 4 (retained counts).
# ---------------------------------------------------------------------------

def visibility_mask(d, window):
    """d [T] bool decisions of one (layer, KV head) -> visible [T query, T key] bool:
    j <= i and (i - j <= W or d[j+1] == 0)."""
    T = d.shape[0]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    marked = torch.zeros(T, dtype=torch.bool)
    marked[:-1] = d[1:]  # the decision carried by token j+1 marks token j
    return (j <= i) & ((i - j <= window) | ~marked[None, :])


def retained_counts(cfg, decisions, T):
    """decisions [L, Hkv, T] -> retained KV count per (layer, KV head) after T tokens:
    min(T, W+1) + #{j < T-W-1 : d[j+1] == 0}. A plain Qwen3 cache is dense."""
    if not cfg.dms:
        return [[T] * cfg.num_kv_heads for _ in range(cfg.num_layers)]
    W = cfg.window
    out = []
    for layer in range(cfg.num_layers):
        row = []
        for head in range(cfg.num_kv_heads):
            d = decisions[layer, head]
            kept_old = sum(1 for j in range(max(0, T - W - 1)) if not bool(d[j + 1]))
            row.append(min(T, W + 1) + kept_old)
        out.append(row)
    return out


def eviction_rate(cfg, decisions):
    """Fraction of 'evict' among the decisions that mark a predecessor (tokens 1..T-1)."""
    if not cfg.dms or decisions.shape[-1] < 2:
        return 0.0
    return decisions[:, :, 1:].to(F64).mean().item()


# ---------------------------------------------------------------------------
# The full teacher-forced pass.
# ---------------------------------------------------------------------------

def dense_attention(cfg, q, k, v, d):
    """q [T,Hq,hd], k/v [T,Hkv,hd], d [T,Hkv] -> attn [T,Hq,hd] over visible keys."""
    out = torch.empty_like(q)
    for qh in range(cfg.num_heads):
        kvh = qh // cfg.group
        mask = visibility_mask(d[:, kvh], cfg.window) if cfg.dms else \
            torch.ones(q.shape[0], q.shape[0], dtype=torch.bool).tril()
        scores = (q[:, qh] @ k[:, kvh].T) / math.sqrt(cfg.head_dim)
        scores = scores.masked_fill(~mask, float("-inf"))
        out[:, qh] = torch.softmax(scores, dim=-1) @ v[:, kvh]
    return out


def forward(cfg, w, tokens):
    """tokens [T] ints -> dict(logits [T, V], decisions [L, Hkv, T] bool,
    decision_logits [L, Hkv, T] (NaN for plain Qwen3))."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    T = tokens.shape[0]
    positions = torch.arange(T)
    x = w["model.embed_tokens.weight"][tokens]
    decisions = torch.zeros(cfg.num_layers, cfg.num_kv_heads, T, dtype=torch.bool)
    dlogits = torch.full((cfg.num_layers, cfg.num_kv_heads, T), float("nan"), dtype=F64)
    for layer in range(cfg.num_layers):
        q, k, v, logits = attention_inputs(cfg, w, layer, x, positions)
        d = decide(cfg, logits, T)
        if logits is not None:
            dlogits[layer] = logits.T
            decisions[layer] = d.T
        x = finish_layer(cfg, w, layer, x, dense_attention(cfg, q, k, v, d))
    return {"logits": lm_head(cfg, w, x), "decisions": decisions, "decision_logits": dlogits}


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    cfg, w = load_model(argv[1])
    tokens = [int(t) for t in argv[2:]]
    out = forward(cfg, w, tokens)
    print("decisions [L][Hkv][T]:", out["decisions"].int().tolist())
    print("retained:", retained_counts(cfg, out["decisions"], len(tokens)))
    print("argmax:", out["logits"].argmax(-1).tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

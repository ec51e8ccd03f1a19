#!/usr/bin/env python3
"""Generates tests/data/models/<name>/: tiny random Qwen3(-DMS) checkpoints in the
real Hugging Face layout plus golden outputs from dms_reference.

Per model: config.json (with the dms_* keys), bf16 model.safetensors, and
golden.json + logits.f32 in the format of ../shared/fixtures/models/*:
`tokens` = a random prompt followed by greedy tokens under DMS; logits.f32 =
float32 little-endian [T, vocab] from one teacher-forced float64 pass over the
bf16 weights. Deterministic: fixed seeds; a seed is skipped (and the next one
tried) when a decision logit or a greedy top-2 margin lies so close to a tie
that a float32 engine could legitimately decide otherwise, or when the eviction
rate falls outside 30-70%.

  python3 tests/reference/make_golden_models.py --out-dir tests/data/models [--only NAME]
  python3 tests/reference/make_golden_models.py --list

Needs torch, safetensors and (for the cross-check) transformers.
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import zlib

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crosscheck_hf  # noqa: E402
import dms_reference as ref  # noqa: E402

MIN_DECISION_MARGIN = 1e-3  # |decision logit| (scale 100: |q - 0.05| >= 1e-5)
MIN_GREEDY_MARGIN = 2e-3  # top-1 minus top-2 logit at each generated step
MAX_ATTEMPTS = 25

# What each model covers is listed in tests/data/models/README.md.
# variant: "neuron" (single-neuron decisions), "proj" (dms_separate_alpha), "plain".
# alpha: q_norm.weight[hd-1] (neuron) or the std of dms_proj_alpha outputs (proj):
# it sets how often the decision logit clears offset/scale = 0.05.
MODELS = [
    dict(name="dms-neuron-w0-gqa1", variant="neuron", hidden=64, layers=2, heads=4, kv=4,
         hd=32, vocab=256, window=0, alpha=0.15, tie=False,
         dms_keys={"dms_separate_alpha": False, "dms_alpha_per": "head"}),
    dict(name="dms-neuron-w1-gqa2-tied", variant="neuron", hidden=64, layers=3, heads=4, kv=2,
         hd=16, vocab=256, window=1, alpha=0.12, tie=True),
    dict(name="dms-neuron-w4-gqa4-rope-params", variant="neuron", hidden=64, layers=2, heads=8,
         kv=2, hd=16, vocab=256, window=4, alpha=0.2, tie=False, nested_rope=True,
         rope_theta=10000.0, dms_keys={"dms_alpha_scale": 40.0, "dms_initial_alpha_offset": 2.0}),
    dict(name="dms-neuron-w16-long", variant="neuron", hidden=64, layers=2, heads=4, kv=2,
         hd=32, vocab=256, window=16, alpha=0.12, tie=False, prompt_len=200, gen_len=100,
         only_window_key=True),
    dict(name="dms-neuron-layer-alpha", variant="neuron", hidden=64, layers=2, heads=4, kv=2,
         hd=16, vocab=256, window=4, alpha=0.15, tie=True, dms_keys={"dms_alpha_per": "layer"}),
    dict(name="dms-neuron-bias-hd64", variant="neuron", hidden=64, layers=2, heads=4, kv=2,
         hd=64, vocab=256, window=4, alpha=0.15, tie=False, bias=True, eps=1e-5),
    dict(name="dms-neuron-no-evict", variant="neuron", hidden=64, layers=2, heads=4, kv=2,
         hd=32, vocab=256, window=4, alpha=0.15, tie=False,
         dms_keys={"dms_disable_eviction": True}),
    dict(name="dms-proj-w4-gqa1-tied", variant="proj", hidden=96, layers=2, heads=3, kv=3,
         hd=32, vocab=384, window=4, alpha=0.3, tie=True),
    dict(name="dms-proj-w16-gqa4", variant="proj", hidden=128, layers=2, heads=8, kv=2,
         hd=16, vocab=256, window=16, alpha=0.5, tie=False),
    dict(name="dms-proj-layer-alpha-long", variant="proj", hidden=64, layers=2, heads=4, kv=2,
         hd=32, vocab=256, window=4, alpha=0.3, tie=False, prompt_len=200, gen_len=100,
         dms_keys={"dms_alpha_per": "layer"}),
    dict(name="qwen3-plain", variant="plain", hidden=64, layers=2, heads=4, kv=2, hd=32,
         vocab=384, window=None, alpha=None, tie=True),
]


def make_config(spec):
    D = spec["hidden"]
    cfg = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": spec.get("bias", False),
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "head_dim": spec["hd"],
        "hidden_act": "silu",
        "hidden_size": D,
        "initializer_range": 0.02,
        "intermediate_size": 2 * D,
        "max_position_embeddings": 4096,
        "max_window_layers": spec["layers"],
        "num_attention_heads": spec["heads"],
        "num_hidden_layers": spec["layers"],
        "num_key_value_heads": spec["kv"],
        "rms_norm_eps": spec.get("eps", 1e-6),
        "rope_scaling": None,
        "rope_theta": spec.get("rope_theta", 1000000.0),
        "sliding_window": None,
        "tie_word_embeddings": spec["tie"],
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": spec["vocab"],
    }
    if spec.get("nested_rope"):
        # The newer transformers layout: theta inside rope_parameters.
        del cfg["rope_scaling"]
        cfg["rope_parameters"] = {"rope_theta": cfg.pop("rope_theta"), "rope_type": "default"}
    if spec["variant"] == "plain":
        return cfg
    if spec.get("only_window_key"):
        cfg["dms_window_size"] = spec["window"]  # all other dms_* keys take their defaults
        return cfg
    cfg.update({"dms_alpha_scale": 100.0, "dms_initial_alpha_offset": 5.0,
                "dms_window_size": spec["window"], "dms_cr": 8})
    if spec["variant"] == "proj":
        cfg.update({"dms_separate_alpha": True, "dms_alpha_per": "head"})
    cfg.update(spec.get("dms_keys", {}))
    return cfg


def make_weights(spec, cfg, g):
    """float32 random weights -> {name: bf16 tensor}. Linear layers preserve unit
    RMS; norm weights near 1 (q/k norms 1.5 for sharper attention)."""
    D, L, I, V = spec["hidden"], spec["layers"], 2 * spec["hidden"], spec["vocab"]
    Hq, Hkv, hd = spec["heads"], spec["kv"], spec["hd"]

    def normal(*shape, std=1.0):
        return torch.randn(*shape, generator=g) * std

    def lin(out_f, in_f, gain=1.0):
        return normal(out_f, in_f, std=gain / math.sqrt(in_f))

    def norm(n, center=1.0):
        return center + normal(n, std=0.1)

    w = {"model.embed_tokens.weight": normal(V, D), "model.norm.weight": norm(D)}
    if not spec["tie"]:
        # Logit std about 3 (tied: sqrt(D)) so greedy choices are clear-cut.
        w["lm_head.weight"] = lin(V, D, gain=3.0)
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(D)
        w[p + "self_attn.q_proj.weight"] = lin(Hq * hd, D)
        w[p + "self_attn.k_proj.weight"] = lin(Hkv * hd, D)
        w[p + "self_attn.v_proj.weight"] = lin(Hkv * hd, D)
        w[p + "self_attn.o_proj.weight"] = lin(D, Hq * hd)
        q_norm = norm(hd, 1.5)
        if spec["variant"] == "neuron":
            q_norm[hd - 1] = spec["alpha"]  # sets the decision rate
        w[p + "self_attn.q_norm.weight"] = q_norm
        w[p + "self_attn.k_norm.weight"] = norm(hd, 1.5)
        w[p + "mlp.gate_proj.weight"] = lin(I, D)
        w[p + "mlp.up_proj.weight"] = lin(I, D)
        w[p + "mlp.down_proj.weight"] = lin(D, I)
        if spec.get("bias"):
            w[p + "self_attn.q_proj.bias"] = normal(Hq * hd, std=0.3)
            w[p + "self_attn.k_proj.bias"] = normal(Hkv * hd, std=0.3)
            w[p + "self_attn.v_proj.bias"] = normal(Hkv * hd, std=0.3)
            w[p + "self_attn.o_proj.bias"] = normal(D, std=0.3)
        if spec["variant"] == "proj":
            w[p + "self_attn.dms_proj_alpha_norm.weight"] = norm(D)
            w[p + "self_attn.dms_proj_alpha.weight"] = lin(Hkv, D, gain=spec["alpha"])
    return {k: v.contiguous().to(torch.bfloat16) for k, v in w.items()}


def greedy_tokens(cfg, w, prompt, gen_len):
    """Prompt followed by gen_len greedy tokens under DMS (full pass per step)."""
    tokens = list(prompt)
    for _ in range(gen_len):
        logits = ref.forward(cfg, w, tokens)["logits"]
        tokens.append(int(logits[-1].argmax()))
    return tokens


def margins(cfg, out, prompt_len):
    """(min |decision logit| over decisions that matter, min greedy top-2 margin)."""
    dl = out["decision_logits"]
    if not cfg.dms or cfg.disable_eviction:
        dmin = float("inf")
    elif cfg.alpha_per == "layer":
        dmin = dl[:, 0, 1:].abs().min().item()
    else:
        dmin = dl[:, :, 1:].abs().min().item()
    top2 = out["logits"][prompt_len - 1:-1].topk(2, dim=-1).values
    return dmin, (top2[:, 0] - top2[:, 1]).min().item()


def build(spec, out_dir, log):
    name = spec["name"]
    prompt_len, gen_len = spec.get("prompt_len", 120), spec.get("gen_len", 80)
    cfg_dict = make_config(spec)
    model_dir = os.path.join(out_dir, name)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
    for attempt in range(MAX_ATTEMPTS):
        seed = zlib.crc32(name.encode()) + attempt
        g = torch.Generator().manual_seed(seed)
        save_file(make_weights(spec, cfg_dict, g), os.path.join(model_dir, "model.safetensors"),
                  metadata={"format": "pt"})
        cfg, w = ref.load_model(model_dir)  # float64 of the stored bf16 values
        prompt = torch.randint(0, spec["vocab"], (prompt_len,), generator=g).tolist()
        tokens = greedy_tokens(cfg, w, prompt, gen_len)
        out = ref.forward(cfg, w, tokens)
        rate = ref.eviction_rate(cfg, out["decisions"])
        dmin, gmin = margins(cfg, out, prompt_len)
        evicting = cfg.dms and not cfg.disable_eviction
        why = []
        if dmin < MIN_DECISION_MARGIN:
            why.append(f"decision margin {dmin:.2e}")
        if gmin < MIN_GREEDY_MARGIN:
            why.append(f"greedy margin {gmin:.2e}")
        if evicting and not 0.3 <= rate <= 0.7:
            why.append(f"eviction rate {rate:.3f}")
        if not why:
            break
        log(f"{name}: seed {seed} rejected ({', '.join(why)})")
    else:
        raise RuntimeError(f"{name}: no acceptable seed in {MAX_ATTEMPTS} attempts")

    T = len(tokens)
    logits = out["logits"]
    logits.to(torch.float32).contiguous().numpy().astype("<f4").tofile(
        os.path.join(model_dir, "logits.f32"))
    no_evict = ref.forward(dataclasses.replace(cfg, disable_eviction=True), w, tokens)["logits"]
    golden = {
        "name": name,
        "prompt_len": prompt_len,
        "tokens": tokens,
        "logits_file": "logits.f32",
        "logits_shape": [T, spec["vocab"]],
        "dtype": "float32",
        "reference": "float64 dense-mask DMS from bf16 weights",
        "hf_crosscheck_rel_err_no_eviction": crosscheck_hf.crosscheck(model_dir, tokens),
        "eviction_rate": rate,
        "retained_per_layer_head": ref.retained_counts(cfg, out["decisions"], T),
        "max_abs_logit_diff_dms_vs_no_eviction": (logits - no_evict).abs().max().item(),
        "seed": seed,
        "min_abs_decision_logit": dmin if math.isfinite(dmin) else None,
        "min_greedy_top2_margin": gmin,
    }
    with open(os.path.join(model_dir, "golden.json"), "w") as f:
        json.dump(golden, f)
    log(f"{name}: T={T} seed={seed} eviction_rate={rate:.3f} "
        f"retained={golden['retained_per_layer_head']} "
        f"hf_rel_err={golden['hf_crosscheck_rel_err_no_eviction']:.2e} "
        f"dms_vs_dense={golden['max_abs_logit_diff_dms_vs_no_eviction']:.3f} "
        f"min_decision={dmin:.2e} min_greedy={gmin:.2e}")
    return golden


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir")
    ap.add_argument("--only", action="append", help="build only this model (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the model names and exit")
    args = ap.parse_args()
    if args.list:
        print("\n".join(spec["name"] for spec in MODELS))
        return 0
    if not args.out_dir:
        ap.error("--out-dir is required")
    torch.set_num_threads(1)  # tiny matrices; run models in parallel processes instead

    def log(msg):
        print(msg, flush=True)

    failed = 0
    for spec in MODELS:
        if args.only and spec["name"] not in args.only:
            continue
        try:
            build(spec, args.out_dir, log)
        except Exception as e:  # report every model, then fail
            failed += 1
            log(f"{spec['name']}: FAILED: {type(e).__name__}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Cross-checks dms_reference against Hugging Face transformers' Qwen3ForCausalLM.

HF knows nothing of DMS, so the comparison runs with eviction turned off. The
single-neuron variant also zeroes q[h*g][hd-1] (before and after RoPE), which
HF does not do; for the check that zeroing is made a no-op by a modified copy
of the checkpoint whose q_norm weight is 0 at elements hd/2-1 and hd-1 (RoPE
pairs the two, so both are then 0 before and after rotation in every head).
The projection variant and plain Qwen3 are compared on the checkpoint as is.

  python3 tests/reference/crosscheck_hf.py MODEL_DIR [MODEL_DIR ...]

Prints, per model, the relative logit error max|ref - hf| / max|hf| (float64
both; HF computes its RoPE tables in float32, hence ~1e-7 rather than ~1e-15).
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dms_reference as ref  # noqa: E402


def hf_logits(model_dir, tokens):
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64,
                                                     attn_implementation="eager")
    except TypeError:  # older transformers
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float64,
                                                     attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([list(tokens)])).logits[0].to(torch.float64)


def neutralized_copy(model_dir, cfg, out_dir):
    """Copies the checkpoint with q_norm.weight[hd/2-1] = q_norm.weight[hd-1] = 0."""
    tensors = load_file(os.path.join(model_dir, "model.safetensors"))
    hd = cfg.head_dim
    for layer in range(cfg.num_layers):
        name = f"model.layers.{layer}.self_attn.q_norm.weight"
        t = tensors[name].clone()
        t[hd // 2 - 1] = 0
        t[hd - 1] = 0
        tensors[name] = t
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(os.path.join(model_dir, "config.json"), os.path.join(out_dir, "config.json"))


def crosscheck(model_dir, tokens):
    """Returns max|ref - hf| / max|hf| over all logits of `tokens`, eviction off."""
    cfg, _ = ref.load_model(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        check_dir = model_dir
        if cfg.dms and not cfg.separate_alpha:
            neutralized_copy(model_dir, cfg, tmp)
            check_dir = tmp
        cfg, w = ref.load_model(check_dir)
        cfg = dataclasses.replace(cfg, disable_eviction=True)
        mine = ref.forward(cfg, w, tokens)["logits"]
        theirs = hf_logits(check_dir, tokens)
    return ((mine - theirs).abs().max() / theirs.abs().max()).item()


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    for model_dir in argv[1:]:
        golden = os.path.join(model_dir, "golden.json")
        if os.path.exists(golden):
            with open(golden) as f:
                tokens = json.load(f)["tokens"]
        else:
            cfg, _ = ref.load_model(model_dir)
            tokens = torch.randint(0, cfg.vocab_size, (64,),
                                   generator=torch.Generator().manual_seed(0)).tolist()
        print(f"{model_dir}: rel err {crosscheck(model_dir, tokens):.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

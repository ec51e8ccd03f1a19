#!/usr/bin/env python3
"""Re-checks golden model fixtures (ours or ../shared/fixtures) with the reference.

For each MODEL_DIR holding config.json, model.safetensors, golden.json and the
logits file: recomputes the teacher-forced logits with dms_reference and
compares them with the stored ones, checks retained_per_layer_head and
eviction_rate, checks that every generated token is the argmax of the previous
position, and runs dms_incremental with three chunkings (one prefill; prefill of
the prompt then single-token decode; random chunks) that must reproduce the
logits and end with cache sizes equal to retained_per_layer_head.

  python3 tests/reference/check_fixtures.py MODEL_DIR [MODEL_DIR ...]

Exit status 1 when any check fails.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dms_incremental as inc  # noqa: E402
import dms_reference as ref  # noqa: E402

LOGIT_TOL = 1e-4  # stored logits are float32 of float64 values
CHUNK_TOL = 1e-9  # two float64 implementations of the same math


def read_logits(model_dir, golden):
    T, V = golden["logits_shape"]
    with open(os.path.join(model_dir, golden["logits_file"]), "rb") as f:
        data = bytearray(f.read())
    assert len(data) == T * V * 4, "logits file size does not match logits_shape"
    return torch.frombuffer(data, dtype=torch.float32).view(T, V).to(torch.float64)


def check_model(model_dir, seed=0):
    """Returns (ok, report dict)."""
    with open(os.path.join(model_dir, "golden.json")) as f:
        golden = json.load(f)
    cfg, w = ref.load_model(model_dir)
    tokens = golden["tokens"]
    T, P = len(tokens), golden["prompt_len"]
    out = ref.forward(cfg, w, tokens)
    logits = out["logits"]
    report = {"name": golden["name"], "T": T}
    ok = True

    stored = read_logits(model_dir, golden)
    report["max_abs_vs_stored"] = (logits - stored).abs().max().item()
    ok &= report["max_abs_vs_stored"] <= LOGIT_TOL

    retained = ref.retained_counts(cfg, out["decisions"], T)
    report["retained_ok"] = retained == golden["retained_per_layer_head"]
    ok &= report["retained_ok"]
    rate = ref.eviction_rate(cfg, out["decisions"])
    report["eviction_rate_diff"] = abs(rate - golden["eviction_rate"])
    ok &= report["eviction_rate_diff"] < 1e-6

    greedy = logits[P - 1:T - 1].argmax(-1).tolist()
    report["greedy_ok"] = greedy == tokens[P:]
    ok &= report["greedy_ok"]

    g = torch.Generator().manual_seed(seed)
    chunkings = {"prefill": [T], "decode": [P] + [1] * (T - P),
                 "random": inc.random_chunks(T, g)}
    for label, chunks in chunkings.items():
        chunk_logits, sizes, peak = inc.run_chunked(cfg, w, tokens, chunks)
        diff = (chunk_logits - logits).abs().max().item()
        report[f"chunked_{label}_max_abs"] = diff
        report[f"chunked_{label}_sizes_ok"] = sizes == retained
        ok &= diff <= CHUNK_TOL and sizes == retained
    report["ok"] = bool(ok)
    return bool(ok), report


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    failed = 0
    for model_dir in argv[1:]:
        ok, report = check_model(model_dir)
        failed += not ok
        print(json.dumps(report))
    print(f"check_fixtures: {len(argv) - 1 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

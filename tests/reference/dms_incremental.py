"""A second, cache-based implementation of DMS visibility (spec sections 3 and 4).

dms_reference.py builds a dense [T, T] mask; this one feeds the sequence in
chunks (any split into prefill and decode calls) through a per-(layer, KV head)
cache that physically drops a token once it has left the window and its
successor decided "evict". Both must give the same logits, and the cache sizes
at the end must equal dms_reference.retained_counts. The layer arithmetic
(projections, norms, RoPE, MLP) is shared with dms_reference; what is checked
here is the eviction bookkeeping.
"""

import math

import torch

import dms_reference as ref


class HeadCache:
    """The retained tokens of one (sequence, layer, KV head)."""

    def __init__(self):
        self.positions = []  # ascending token positions
        self.keys = []  # each [hd]
        self.values = []  # each [hd]
        self.evicted = []  # decision carried by the successor; None until it arrives

    def append(self, position, key, value, decision):
        # The new token's decision marks its predecessor, which is always still
        # here: the newest token is never dropped.
        if self.positions:
            assert self.positions[-1] == position - 1
            self.evicted[-1] = bool(decision)
        self.positions.append(position)
        self.keys.append(key)
        self.values.append(value)
        self.evicted.append(None)

    def visible(self, query_pos, window):
        # [n] bool over the cached entries for a query at query_pos.
        pos = torch.tensor(self.positions)
        marked = torch.tensor([e is True for e in self.evicted])
        return (pos <= query_pos) & ((query_pos - pos <= window) | ~marked)

    def drop_evicted(self, last_pos, window):
        # Every later query i > last_pos has i - j > W too: safe to free.
        keep = [not (e is True and last_pos - p > window)
                for p, e in zip(self.positions, self.evicted)]
        for name in ("positions", "keys", "values", "evicted"):
            setattr(self, name, [x for x, k in zip(getattr(self, name), keep) if k])


def run_chunked(cfg, w, tokens, chunks):
    """Feeds `tokens` in chunks of the given sizes (sum = T). Returns
    (logits [T, V], cache sizes [L][Hkv], peak total cache entries)."""
    assert sum(chunks) == len(tokens)
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    caches = [[HeadCache() for _ in range(cfg.num_kv_heads)] for _ in range(cfg.num_layers)]
    window = cfg.window if cfg.dms else len(tokens)
    outputs = []
    peak = 0
    start = 0
    for n in chunks:
        positions = torch.arange(start, start + n)
        x = w["model.embed_tokens.weight"][tokens[start:start + n]]
        for layer in range(cfg.num_layers):
            q, k, v, logits = ref.attention_inputs(cfg, w, layer, x, positions)
            d = ref.decide(cfg, logits, n)
            attn = torch.empty_like(q)
            for h in range(cfg.num_kv_heads):
                cache = caches[layer][h]
                for t in range(n):
                    cache.append(start + t, k[t, h], v[t, h], d[t, h])
                keys = torch.stack(cache.keys)
                values = torch.stack(cache.values)
                for t in range(n):
                    vis = cache.visible(start + t, window)
                    for qh in range(h * cfg.group, (h + 1) * cfg.group):
                        scores = (keys @ q[t, qh]) / math.sqrt(cfg.head_dim)
                        scores = scores.masked_fill(~vis, float("-inf"))
                        attn[t, qh] = torch.softmax(scores, dim=-1) @ values
                peak = max(peak, sum(len(c.positions) for row in caches for c in row))
                cache.drop_evicted(start + n - 1, window)
            x = ref.finish_layer(cfg, w, layer, x, attn)
        outputs.append(ref.lm_head(cfg, w, x))
        start += n
    sizes = [[len(c.positions) for c in row] for row in caches]
    return torch.cat(outputs, dim=0), sizes, peak


def random_chunks(total, generator, max_chunk=64):
    """A random split of `total` tokens into chunk sizes (deterministic for a seeded generator)."""
    out = []
    while total > 0:
        n = int(torch.randint(1, max_chunk + 1, (1,), generator=generator))
        n = min(n, total)
        out.append(n)
        total -= n
    return out

#include "engine/cpu/cpu_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/core/dms_rules.h"

namespace dms {
namespace {

inline float Dot(const float* a, const float* b, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// One (chunk, query token, KV head) task: all g query heads of the group.
void AttendOne(const AttentionDims& dims, const AttentionChunk& c, int qi, int h,
               std::vector<float>& scores, std::vector<const float*>& keys,
               std::vector<const float*>& vrows) {
  const int hd = dims.head_dim, hkv = dims.num_kv_heads, hq = dims.num_q_heads;
  const int g = hq / hkv;
  const int64_t i = c.first_pos + qi;
  const HeadCacheView& cache = c.cache[h];
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));

  // Collect the visible keys once for the group (visibility is per KV head).
  keys.clear();
  vrows.clear();
  for (int s = 0; s < cache.length(); ++s) {
    const int32_t j = cache.pos(s);
    // The newest cached token's mark comes from this chunk's first decision.
    const bool evicts = (j == c.first_pos - 1) ? c.decisions[h] != 0 : cache.EvictMarked(j);
    if (!DmsKeyVisible(i, j, evicts, dims.window)) continue;
    keys.push_back(cache.k(s));
    vrows.push_back(cache.v(s));
  }
  for (int jj = 0; jj <= qi; ++jj) {
    const int64_t j = c.first_pos + jj;
    const bool evicts = jj + 1 < c.n ? c.decisions[(jj + 1) * hkv + h] != 0 : false;
    if (!DmsKeyVisible(i, j, evicts, dims.window)) continue;
    keys.push_back(c.k + (static_cast<int64_t>(jj) * hkv + h) * hd);
    vrows.push_back(c.v + (static_cast<int64_t>(jj) * hkv + h) * hd);
  }
  const int nk = static_cast<int>(keys.size());
  scores.resize(nk);
  for (int qh = h * g; qh < (h + 1) * g; ++qh) {
    const float* q = c.q + (static_cast<int64_t>(qi) * hq + qh) * hd;
    float mx = -INFINITY;
    for (int t = 0; t < nk; ++t) {
      scores[t] = Dot(q, keys[t], hd) * scale;
      mx = std::max(mx, scores[t]);
    }
    double sum = 0;
    for (int t = 0; t < nk; ++t) {
      scores[t] = std::exp(scores[t] - mx);
      sum += scores[t];
    }
    float* o = c.out + (static_cast<int64_t>(qi) * hq + qh) * hd;
    std::memset(o, 0, sizeof(float) * hd);
    const float inv = static_cast<float>(1.0 / sum);
    for (int t = 0; t < nk; ++t) {
      const float p = scores[t] * inv;
      const float* v = vrows[t];
      for (int d = 0; d < hd; ++d) o[d] += p * v[d];
    }
  }
}

}  // namespace

void DmsAttention(ThreadPool& pool, const AttentionDims& dims, std::vector<AttentionChunk>& chunks) {
  // Flatten (chunk, token, KV head) into one index space.
  std::vector<int64_t> offsets(chunks.size() + 1, 0);
  for (size_t c = 0; c < chunks.size(); ++c) {
    offsets[c + 1] = offsets[c] + static_cast<int64_t>(chunks[c].n) * dims.num_kv_heads;
  }
  pool.ParallelFor(offsets.back(), [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> scores;
    thread_local std::vector<const float*> keys, vrows;
    size_t c = std::upper_bound(offsets.begin(), offsets.end(), t0) - offsets.begin() - 1;
    for (int64_t t = t0; t < t1; ++t) {
      while (t >= offsets[c + 1]) ++c;
      const int64_t local = t - offsets[c];
      AttendOne(dims, chunks[c], static_cast<int>(local / dims.num_kv_heads),
                static_cast<int>(local % dims.num_kv_heads), scores, keys, vrows);
    }
  });
}

}  // namespace dms

#include "tests/gpu/kv_harness.h"

#include <cstring>
#include <string>

#include "kernels/kv_append.h"

namespace dms::gpu_testing {
namespace {

std::vector<uint8_t> AsDtypeBytes(const std::vector<float>& v, cuda::KvDType dtype) {
  if (dtype == cuda::KvDType::kF32) {
    std::vector<uint8_t> out(v.size() * 4);
    std::memcpy(out.data(), v.data(), out.size());
    return out;
  }
  std::vector<__nv_bfloat16> b = ToBf16(v);
  std::vector<uint8_t> out(b.size() * 2);
  std::memcpy(out.data(), b.data(), out.size());
  return out;
}

}  // namespace

KvHarness::KvHarness(const KvHarnessConfig& c) : config_(c) {
  KvCacheConfig kc;
  kc.num_layers = c.num_layers;
  kc.num_kv_heads = c.num_kv_heads;
  kc.head_dim = c.head_dim;
  kc.window = c.window;
  kc.block_size = c.block_size;
  kc.num_blocks = c.num_blocks;
  cpu_ = std::make_unique<DmsKvCache>(kc);
  CudaKvConfig gc;
  gc.num_layers = c.num_layers;
  gc.num_kv_heads = c.num_kv_heads;
  gc.head_dim = c.head_dim;
  gc.window = c.window;
  gc.block_size = c.block_size;
  gc.num_blocks = c.num_blocks;
  gc.max_sequences = c.max_sequences;
  gc.max_blocks_per_head = c.num_blocks;
  gc.dtype = c.dtype;
  auto g = CudaKvCache::Create(gc);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  if (g.ok()) gpu_ = std::move(*g);
  // Poison the pool: a slot read before it is written shows up as NaN.
  const cuda::KvDeviceView v = gpu_->view();
  cudaMemset(v.pool, 0xff, static_cast<size_t>(c.num_blocks) * gpu_->block_bytes());
  cudaMemset(v.pool_pos, 0xff, static_cast<size_t>(c.num_blocks) * c.block_size * 4);
}

SeqId KvHarness::AddSequence() {
  const SeqId a = cpu_->AddSequence();
  auto b = gpu_->AddSequence(nullptr);
  EXPECT_TRUE(b.ok());
  EXPECT_EQ(a, *b) << "CPU and GPU caches hand out different ids";
  return a;
}

KvStep KvHarness::MakeStep(const std::vector<std::pair<SeqId, int>>& chunks, double evict_rate,
                           std::mt19937_64& rng) const {
  KvStep s;
  const int hkv = config_.num_kv_heads, hd = config_.head_dim;
  std::bernoulli_distribution evict(evict_rate);
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto [seq, n] = chunks[i];
    s.chunks.push_back(cuda::StepChunk{seq, cpu_->LogicalTokens(seq), n, s.num_tokens});
    for (int t = 0; t < n; ++t) s.row_chunk.push_back(static_cast<int32_t>(i));
    s.num_tokens += n;
  }
  s.k = RandomUniform(static_cast<size_t>(s.num_tokens) * hkv * hd, rng);
  s.v = RandomUniform(s.k.size(), rng);
  if (config_.dtype == cuda::KvDType::kBF16) {
    for (float& x : s.k) x = RoundBf16(x);
    for (float& x : s.v) x = RoundBf16(x);
  }
  s.dec.resize(static_cast<size_t>(s.num_tokens) * hkv);
  for (uint8_t& d : s.dec) d = evict(rng) ? 1 : 0;
  if (config_.window == kDenseWindow) std::fill(s.dec.begin(), s.dec.end(), 0);
  return s;
}

void KvHarness::Upload(const KvStep& s) {
  d_chunks_.Upload(s.chunks);
  d_row_chunk_.Upload(s.row_chunk);
  d_k_.Upload(AsDtypeBytes(s.k, config_.dtype));
  d_v_.Upload(AsDtypeBytes(s.v, config_.dtype));
  d_dec_.Upload(s.dec);
}

::testing::AssertionResult KvHarness::Append(const KvStep& s) {
  const int hkv = config_.num_kv_heads, hd = config_.head_dim, layer = config_.layer;
  // CPU reference.
  for (const cuda::StepChunk& c : s.chunks) {
    Status st = cpu_->Reserve(c.seq, c.n);
    if (!st.ok()) return ::testing::AssertionFailure() << "CPU reserve: " << st.ToString();
    for (int h = 0; h < hkv; ++h) {
      for (int t = 0; t < c.n; ++t) {
        const size_t row = static_cast<size_t>(c.row_base + t) * hkv + h;
        st = cpu_->Append(c.seq, layer, h, &s.k[row * hd], &s.v[row * hd], s.dec[row] != 0);
        if (!st.ok()) return ::testing::AssertionFailure() << "CPU append: " << st.ToString();
      }
    }
    cpu_->CommitStep(c.seq, c.n);
  }
  // GPU.
  gpu_->ClearUpdates();
  for (const cuda::StepChunk& c : s.chunks) {
    Status st = gpu_->Reserve(c.seq, c.n);
    if (!st.ok()) return ::testing::AssertionFailure() << "GPU reserve: " << st.ToString();
  }
  d_updates_.Upload(gpu_->updates());
  const int pairs = static_cast<int>(gpu_->updates().size() / 2);
  gpu_->ClearUpdates();
  cudaError_t err = cuda::LaunchPageTableScatter(gpu_->view().page_table, d_updates_.get(), pairs, nullptr);
  if (err != cudaSuccess) return ::testing::AssertionFailure() << "scatter: " << cudaGetErrorString(err);
  d_slot_scratch_.Resize(static_cast<size_t>(s.num_tokens) * hkv);
  d_write_slot_.Resize(static_cast<size_t>(s.num_tokens) * hkv);
  cuda::KvAppendParams p;
  p.kv = gpu_->view();
  p.layer = layer;
  p.chunks = d_chunks_.get();
  p.num_chunks = static_cast<int>(s.chunks.size());
  p.row_chunk = d_row_chunk_.get();
  p.num_tokens = s.num_tokens;
  p.k_new = d_k_.get();
  p.v_new = d_v_.get();
  p.decisions = d_dec_.get();
  p.slot_scratch = d_slot_scratch_.get();
  p.write_slot = d_write_slot_.get();
  err = cuda::LaunchKvAppend(p, nullptr);
  if (err == cudaSuccess) err = cudaDeviceSynchronize();
  if (err != cudaSuccess) return ::testing::AssertionFailure() << "append: " << cudaGetErrorString(err);
  const size_t heads = static_cast<size_t>(config_.max_sequences) * gpu_->heads_per_sequence();
  std::vector<int32_t> lengths(heads);
  cudaMemcpy(lengths.data(), gpu_->view().head_len, heads * 4, cudaMemcpyDeviceToHost);
  for (const cuda::StepChunk& c : s.chunks) gpu_->CommitStep(c.seq, c.n, lengths.data());
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult KvHarness::CompareState(SeqId seq) {
  const cuda::KvDeviceView v = gpu_->view();
  const int hkv = config_.num_kv_heads, hd = config_.head_dim, bs = config_.block_size;
  const int layer = config_.layer;
  const size_t heads = static_cast<size_t>(config_.max_sequences) * gpu_->heads_per_sequence();
  const int ring = config_.window == kDenseWindow ? 0 : config_.window + 1;
  std::vector<int32_t> len(heads), table(heads * v.max_blocks_per_head);
  std::vector<int32_t> pos(static_cast<size_t>(config_.num_blocks) * bs);
  std::vector<uint8_t> evict(heads * ring);
  std::vector<uint8_t> pool(static_cast<size_t>(config_.num_blocks) * gpu_->block_bytes());
  cudaDeviceSynchronize();
  cudaMemcpy(len.data(), v.head_len, len.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(table.data(), v.page_table, table.size() * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(pos.data(), v.pool_pos, pos.size() * 4, cudaMemcpyDeviceToHost);
  if (ring > 0) cudaMemcpy(evict.data(), v.ring_evict, evict.size(), cudaMemcpyDeviceToHost);
  cudaMemcpy(pool.data(), v.pool, pool.size(), cudaMemcpyDeviceToHost);
  const int es = cuda::KvDTypeSize(config_.dtype);
  auto value = [&](int64_t block, int which, int off, int d) {
    const size_t i = ((static_cast<size_t>(block) * 2 + which) * bs + off) * hd + d;
    if (es == 4) {
      float f;
      std::memcpy(&f, &pool[i * 4], 4);
      return f;
    }
    return Bf16BytesToFloat(&pool[i * 2]);
  };
  const int tokens = cpu_->LogicalTokens(seq);
  for (int h = 0; h < hkv; ++h) {
    const HeadCacheView cv = cpu_->View(seq, layer, h);
    const size_t head = (static_cast<size_t>(seq) * config_.num_layers + layer) * hkv + h;
    if (len[head] != cv.length()) {
      return ::testing::AssertionFailure() << "head " << h << ": GPU length " << len[head]
                                           << ", CPU " << cv.length() << " after " << tokens;
    }
    for (int s = 0; s < cv.length(); ++s) {
      const int32_t block = table[head * v.max_blocks_per_head + s / bs];
      const int off = s % bs;
      if (pos[static_cast<size_t>(block) * bs + off] != cv.pos(s)) {
        return ::testing::AssertionFailure()
               << "head " << h << " slot " << s << ": GPU position "
               << pos[static_cast<size_t>(block) * bs + off] << ", CPU " << cv.pos(s);
      }
      for (int d = 0; d < hd; ++d) {
        const float gk = value(block, 0, off, d), gv = value(block, 1, off, d);
        if (std::memcmp(&gk, cv.k(s) + d, 4) != 0 || std::memcmp(&gv, cv.v(s) + d, 4) != 0) {
          return ::testing::AssertionFailure() << "head " << h << " slot " << s << " dim " << d
                                               << ": K/V bits differ (GPU " << gk << "/" << gv
                                               << ", CPU " << cv.k(s)[d] << "/" << cv.v(s)[d] << ")";
        }
      }
    }
    for (int p = std::max(0, tokens - ring); p < tokens && ring > 0; ++p) {
      if ((evict[head * ring + p % ring] != 0) != cv.EvictMarked(p)) {
        return ::testing::AssertionFailure() << "head " << h << ": ring mark of position " << p
                                             << " differs";
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace dms::gpu_testing

#include "engine/cuda/cuda_weights.h"

#include <cmath>
#include <cstring>
#include <functional>

#include "engine/cuda/cuda_status.h"
#include "common/half.h"

namespace dms {
namespace {

// A tensor's elements as bf16 bits (a copy only when it is not bf16 already).
std::vector<uint16_t> ToBf16(const TensorView& t) {
  std::vector<uint16_t> out(t.numel());
  if (t.dtype == DType::kBF16) {
    std::memcpy(out.data(), t.data, out.size() * 2);
    return out;
  }
  for (int64_t i = 0; i < t.numel(); ++i) {
    float f;
    if (t.dtype == DType::kF32) {
      std::memcpy(&f, t.data + i * 4, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t.data + i * 2, 2);
      f = Fp16ToFloat(h);
    }
    out[i] = FloatToBf16(f);
  }
  return out;
}

std::vector<float> ToF32(const TensorView& t) {
  std::vector<float> out(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype == DType::kF32) {
      std::memcpy(&out[i], t.data + i * 4, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t.data + i * 2, 2);
      out[i] = t.dtype == DType::kBF16 ? Bf16ToFloat(h) : Fp16ToFloat(h);
    }
  }
  return out;
}

}  // namespace

Status CudaWeights::Upload(const Checkpoint& checkpoint, int max_positions) {
  const ModelConfig& cfg = checkpoint.config();
  const ModelWeights& w = checkpoint.weights();
  const int64_t hd = cfg.head_dim;
  const bool tied = w.lm_head == w.embed_tokens;

  // Pass 1: plan every piece's offset; pass 2: one allocation, then upload.
  struct Piece {
    size_t offset;
    std::function<Status(void*)> upload;
  };
  std::vector<Piece> pieces;
  auto add_bf16 = [&](std::vector<const TensorView*> parts) {
    int64_t n = 0;
    for (const TensorView* t : parts) n += t->numel();
    const size_t off = arena_.Plan(n * 2);
    pieces.push_back({off, [parts](void* dst) -> Status {
                        char* at = static_cast<char*>(dst);
                        for (const TensorView* t : parts) {
                          std::vector<uint16_t> h = ToBf16(*t);
                          DMS_CUDA_RETURN_IF_ERROR(
                              cudaMemcpy(at, h.data(), h.size() * 2, cudaMemcpyHostToDevice),
                              "upload of " + t->name);
                          at += h.size() * 2;
                        }
                        return OkStatus();
                      }});
    return off;
  };
  auto add_f32 = [&](std::vector<float> values) {
    const size_t off = arena_.Plan(values.size() * 4);
    pieces.push_back({off, [v = std::move(values)](void* dst) -> Status {
                        DMS_CUDA_RETURN_IF_ERROR(
                            cudaMemcpy(dst, v.data(), v.size() * 4, cudaMemcpyHostToDevice),
                            "upload of a norm/bias vector");
                        return OkStatus();
                      }});
    return off;
  };
  auto f32_of = [](const TensorView* t) { return ToF32(*t); };

  const size_t embed_off = add_bf16({w.embed_tokens});
  const size_t head_off = tied ? embed_off : add_bf16({w.lm_head});
  const size_t final_norm_off = add_f32(f32_of(w.final_norm));
  // RoPE table, computed as the CPU reference does (angle in double).
  const int half = static_cast<int>(hd / 2);
  std::vector<float> cs(static_cast<size_t>(max_positions) * half), sn(cs.size());
  for (int i = 0; i < half; ++i) {
    const double inv_freq = 1.0 / std::pow(cfg.rope_theta, (2.0 * i) / hd);
    for (int pos = 0; pos < max_positions; ++pos) {
      const double angle = pos * inv_freq;
      cs[static_cast<size_t>(pos) * half + i] = static_cast<float>(std::cos(angle));
      sn[static_cast<size_t>(pos) * half + i] = static_cast<float>(std::sin(angle));
    }
  }
  const size_t cos_off = add_f32(std::move(cs));
  const size_t sin_off = add_f32(std::move(sn));

  struct LayerOffsets {
    size_t input_norm, post_norm, q_norm, k_norm, qkv, qkv_bias = SIZE_MAX, o, o_bias = SIZE_MAX,
        gate_up, down, alpha_norm = SIZE_MAX, alpha = SIZE_MAX;
  };
  std::vector<LayerOffsets> offs(cfg.num_layers);
  for (int l = 0; l < cfg.num_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    LayerOffsets& o = offs[l];
    o.input_norm = add_f32(f32_of(lw.input_layernorm));
    o.post_norm = add_f32(f32_of(lw.post_attention_layernorm));
    o.q_norm = add_f32(f32_of(lw.q_norm));
    o.k_norm = add_f32(f32_of(lw.k_norm));
    o.qkv = add_bf16({lw.q_proj, lw.k_proj, lw.v_proj});
    if (lw.q_bias) {
      std::vector<float> b = f32_of(lw.q_bias), kb = f32_of(lw.k_bias), vb = f32_of(lw.v_bias);
      b.insert(b.end(), kb.begin(), kb.end());
      b.insert(b.end(), vb.begin(), vb.end());
      o.qkv_bias = add_f32(std::move(b));
    }
    o.o = add_bf16({lw.o_proj});
    if (lw.o_bias) o.o_bias = add_f32(f32_of(lw.o_bias));
    o.gate_up = add_bf16({lw.gate_proj, lw.up_proj});
    o.down = add_bf16({lw.down_proj});
    if (lw.dms_proj_alpha) {
      o.alpha_norm = add_f32(f32_of(lw.dms_proj_alpha_norm));
      o.alpha = add_bf16({lw.dms_proj_alpha});
    }
  }
  DMS_RETURN_IF_ERROR(arena_.Allocate("model weights"));
  for (const Piece& p : pieces) DMS_RETURN_IF_ERROR(p.upload(arena_.At<void>(p.offset)));

  embed_ = arena_.At<__nv_bfloat16>(embed_off);
  lm_head_ = arena_.At<__nv_bfloat16>(head_off);
  final_norm_ = arena_.At<float>(final_norm_off);
  rope_cos_ = arena_.At<float>(cos_off);
  rope_sin_ = arena_.At<float>(sin_off);
  layers_.resize(cfg.num_layers);
  for (int l = 0; l < cfg.num_layers; ++l) {
    const LayerOffsets& o = offs[l];
    CudaLayerWeights& L = layers_[l];
    L.input_norm = arena_.At<float>(o.input_norm);
    L.post_norm = arena_.At<float>(o.post_norm);
    L.q_norm = arena_.At<float>(o.q_norm);
    L.k_norm = arena_.At<float>(o.k_norm);
    L.qkv = arena_.At<__nv_bfloat16>(o.qkv);
    L.qkv_bias = o.qkv_bias == SIZE_MAX ? nullptr : arena_.At<float>(o.qkv_bias);
    L.o = arena_.At<__nv_bfloat16>(o.o);
    L.o_bias = o.o_bias == SIZE_MAX ? nullptr : arena_.At<float>(o.o_bias);
    L.gate_up = arena_.At<__nv_bfloat16>(o.gate_up);
    L.down = arena_.At<__nv_bfloat16>(o.down);
    L.alpha_norm = o.alpha_norm == SIZE_MAX ? nullptr : arena_.At<float>(o.alpha_norm);
    L.alpha = o.alpha == SIZE_MAX ? nullptr : arena_.At<__nv_bfloat16>(o.alpha);
  }
  return OkStatus();
}

}  // namespace dms

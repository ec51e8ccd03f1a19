#include "engine/model/tensor_layout.h"

namespace dms {

std::vector<TensorSlot> ExpectedTensors(const ModelConfig& c) {
  const int64_t D = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q_out = int64_t{c.num_q_heads} * c.head_dim;
  const int64_t kv_out = int64_t{c.num_kv_heads} * c.head_dim;
  std::vector<TensorSlot> out;
  out.push_back({"model.embed_tokens.weight", {V, D}, TensorRole::kEmbedTokens, -1});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto add = [&](const std::string& name, std::vector<int64_t> shape, TensorRole role) {
      out.push_back({p + name, std::move(shape), role, l});
    };
    // Module registration order of Qwen3DecoderLayer.
    add("self_attn.q_proj.weight", {q_out, D}, TensorRole::kQProj);
    if (c.attention_bias) add("self_attn.q_proj.bias", {q_out}, TensorRole::kQBias);
    add("self_attn.k_proj.weight", {kv_out, D}, TensorRole::kKProj);
    if (c.attention_bias) add("self_attn.k_proj.bias", {kv_out}, TensorRole::kKBias);
    add("self_attn.v_proj.weight", {kv_out, D}, TensorRole::kVProj);
    if (c.attention_bias) add("self_attn.v_proj.bias", {kv_out}, TensorRole::kVBias);
    add("self_attn.o_proj.weight", {D, q_out}, TensorRole::kOProj);
    if (c.attention_bias) add("self_attn.o_proj.bias", {D}, TensorRole::kOBias);
    add("self_attn.q_norm.weight", {c.head_dim}, TensorRole::kQNorm);
    add("self_attn.k_norm.weight", {c.head_dim}, TensorRole::kKNorm);
    if (c.dms.enabled && c.dms.separate_alpha) {
      add("self_attn.dms_proj_alpha_norm.weight", {D}, TensorRole::kDmsAlphaNorm);
      add("self_attn.dms_proj_alpha.weight", {c.num_kv_heads, D}, TensorRole::kDmsAlpha);
    }
    add("mlp.gate_proj.weight", {I, D}, TensorRole::kGateProj);
    add("mlp.up_proj.weight", {I, D}, TensorRole::kUpProj);
    add("mlp.down_proj.weight", {D, I}, TensorRole::kDownProj);
    add("input_layernorm.weight", {D}, TensorRole::kInputNorm);
    add("post_attention_layernorm.weight", {D}, TensorRole::kPostAttentionNorm);
  }
  out.push_back({"model.norm.weight", {D}, TensorRole::kFinalNorm, -1});
  if (!c.tie_word_embeddings) {
    out.push_back({"lm_head.weight", {V, D}, TensorRole::kLmHead, -1});
  }
  return out;
}

}  // namespace dms

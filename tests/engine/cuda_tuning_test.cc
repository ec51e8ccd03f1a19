// CudaTuning's text form: the defaults, every key, the order keys apply in,
// and one clear line for each kind of bad input.
#include "engine/core/cuda_tuning.h"

#include <gtest/gtest.h>

namespace dms {
namespace {

constexpr const char* kDefaults =
    "fold_norms=on,last_layer_logit_rows=on,cached_kept_keys=on,q_bf16=on,"
    "decode_attention=simt,attention_core=auto,pdl=all";

TEST(CudaTuning, DefaultsAndRoundTrip) {
  EXPECT_EQ(FormatCudaTuning(CudaTuning{}), kDefaults);
  StatusOr<CudaTuning> empty = ParseCudaTuning("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(FormatCudaTuning(*empty), kDefaults);
  const std::string spec =
      "fold_norms=off,last_layer_logit_rows=0,cached_kept_keys=false,q_bf16=off,"
      "decode_attention=mma,attention_core=wgmma_ws,pdl=gemv+attention";
  StatusOr<CudaTuning> t = ParseCudaTuning(spec);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_FALSE(t->fold_norms);
  EXPECT_FALSE(t->last_layer_logit_rows);
  EXPECT_FALSE(t->cached_kept_keys);
  EXPECT_FALSE(t->q_bf16);
  EXPECT_EQ(t->decode_attention, "mma");
  EXPECT_EQ(t->attention_core, "wgmma_ws");
  EXPECT_EQ(t->pdl_groups, (1u << 0) | (1u << 3));
  const std::string text = FormatCudaTuning(*t);
  EXPECT_EQ(text,
            "fold_norms=off,last_layer_logit_rows=off,cached_kept_keys=off,q_bf16=off,"
            "decode_attention=mma,attention_core=wgmma_ws,pdl=gemv+attention");
  EXPECT_EQ(FormatCudaTuning(*ParseCudaTuning(text)), text);
}

TEST(CudaTuning, LaterKeysWinAndPdlNone) {
  StatusOr<CudaTuning> t = ParseCudaTuning("q_bf16=off,pdl=none,q_bf16=on,");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->q_bf16);
  EXPECT_EQ(t->pdl_groups, 0u);
  EXPECT_EQ(ParseCudaTuning("pdl=all")->pdl_groups, ~0u);
}

TEST(CudaTuning, BadInputIsOneClearLine) {
  auto err = [](const char* spec) { return ParseCudaTuning(spec).status().message(); };
  EXPECT_EQ(err("fold_norms"), "CUDA tuning: 'fold_norms' is not key=value");
  EXPECT_EQ(err("fold_norm=on"),
            "CUDA tuning: unknown key 'fold_norm' (fold_norms, last_layer_logit_rows, "
            "cached_kept_keys, q_bf16, decode_attention, attention_core, pdl)");
  EXPECT_EQ(err("q_bf16=yes"), "CUDA tuning: q_bf16 takes on or off, not 'yes'");
  EXPECT_EQ(err("attention_core=fast"),
            "CUDA tuning: attention_core takes auto, mma_sync, wgmma or wgmma_ws, not 'fast'");
  EXPECT_EQ(err("decode_attention=fast"),
            "CUDA tuning: decode_attention takes simt, streamed or mma, not 'fast'");
  EXPECT_EQ(err("pdl=gemv+mlp"),
            "CUDA tuning: pdl takes all, none or groups joined by '+' (gemv, norm, epilogue, "
            "attention, append, elementwise), not 'mlp'");
  EXPECT_EQ(ParseCudaTuning("q_bf16=yes").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dms

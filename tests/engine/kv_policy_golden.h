// The KV-policy golden data of tests/data/kv_policies/ (written by
// tests/reference/kv_policies.py): loaders shared by the kv_policy_*_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/core/backend.h"
#include "engine/policies/kv_policy.h"
#include "tests/test_util.h"

namespace dms::testing {

inline std::string KvPolicyDataDir() { return TestDataDir() + "/kv_policies"; }

inline std::vector<float> ReadF32File(const std::string& path) {
  const std::string bytes = ReadFile(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// {"offset", "shape"} into a float32 file.
inline std::vector<float> Slice(const std::vector<float>& blob, const nlohmann::json& ref) {
  size_t n = 1;
  for (const auto& d : ref["shape"]) n *= d.get<size_t>();
  const size_t off = ref["offset"].get<size_t>();
  if (off + n > blob.size()) {
    ADD_FAILURE() << "golden array past the end of its file: " << ref.dump();
    return {};
  }
  return std::vector<float>(blob.begin() + off, blob.begin() + off + n);
}

inline KvPolicyParams ParamsFrom(const nlohmann::json& j) {
  KvPolicyParams p;
  p.window = j.at("window");
  p.pool_kernel = j.at("pool_kernel");
  p.sinks = j.at("sinks");
  p.future_positions = j.at("future_positions");
  return p;
}

inline KvPolicyKind KindFrom(const nlohmann::json& j) {
  StatusOr<KvPolicyKind> k = ParseKvPolicy(j.get<std::string>(), "policy");
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return k.ok() ? *k : KvPolicyKind::kAuto;
}

// Reference scores: null for the forced entries.
inline std::vector<std::optional<double>> ScoresFrom(const nlohmann::json& j) {
  std::vector<std::optional<double>> out;
  for (const auto& s : j) out.push_back(s.is_null() ? std::nullopt : std::optional<double>(s.get<double>()));
  return out;
}

// Largest |got - want| over the scored entries, relative to the largest |want|.
inline double MaxRelScoreDiff(const std::vector<double>& got, const std::vector<std::optional<double>>& want) {
  EXPECT_EQ(got.size(), want.size());
  double scale = 0, worst = 0;
  for (const auto& w : want) scale = std::max(scale, w ? std::abs(*w) : 0.0);
  if (scale == 0) scale = 1;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (want[i]) worst = std::max(worst, std::abs(got[i] - *want[i]) / scale);
  }
  return worst;
}

// The chunkings of a prompt of n tokens the policy tests run: one prefill; a
// mixed pattern with single-token chunks; random splits (seeded by n).
inline std::vector<std::pair<std::string, std::vector<int>>> PolicyChunkings(int n) {
  std::vector<std::pair<std::string, std::vector<int>>> out;
  out.push_back({"one prefill", {n}});
  const int pattern[] = {7, 50, 1, 1, 62, 1, 13, 30, 2};
  std::vector<int> mixed;
  for (int i = 0, left = n; left > 0; ++i) {
    mixed.push_back(std::min(left, pattern[i % 9]));
    left -= mixed.back();
  }
  out.push_back({"mixed", mixed});
  std::mt19937 rng(n);
  std::vector<int> random;
  for (int left = n; left > 0;) {
    random.push_back(std::min(left, std::uniform_int_distribution<int>(1, 40)(rng)));
    left -= random.back();
  }
  out.push_back({"random", random});
  return out;
}

inline Status FeedChunks(Backend& b, SeqId seq, std::span<const int32_t> tokens, const std::vector<int>& chunks,
            std::vector<float>* logits) {
  size_t at = 0;
  std::vector<float> step;
  for (int n : chunks) {
    ForwardChunk c{seq, tokens.subspan(at, n), logits ? n : 0};
    DMS_RETURN_IF_ERROR(b.Forward(std::span<const ForwardChunk>(&c, 1), &step));
    if (logits) logits->insert(logits->end(), step.begin(), step.end());
    at += n;
  }
  return OkStatus();
}

// Positions each KV head of `layer` holds, in slot order (knorm scoring
// needs no capture and reports every slot's position).
inline std::vector<std::vector<int32_t>> HeldPositions(Backend& b, SeqId seq, int layer) {
  KvPolicySpec probe;
  probe.kind = KvPolicyKind::kKnorm;  // needs no capture; reports every slot's position
  std::vector<KvHeadScores> heads;
  Status st = b.ScoreKvLayer(seq, layer, probe, &heads);
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::vector<std::vector<int32_t>> out;
  for (const KvHeadScores& h : heads) out.push_back(h.positions);
  return out;
}

}  // namespace dms::testing

// The KV-policy golden data of tests/data/kv_policies/ (written by
// tests/reference/kv_policies.py): loaders shared by the kv_policy_*_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

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

}  // namespace dms::testing

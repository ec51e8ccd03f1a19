#include "client/dataset.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/bounded_json.h"

namespace dms::client {
namespace {

// Qwen3's regular (non-special) vocabulary ends here.
constexpr int32_t kQwen3RegularTokens = 151643;

int64_t Draw(const IntRange& r, std::mt19937_64& rng) {
  if (r.lo == r.hi) return r.lo;
  return std::uniform_int_distribution<int64_t>(r.lo, r.hi)(rng);
}

Status LineError(const std::string& name, size_t line, const std::string& what) {
  return InvalidArgumentError(name + ":" + std::to_string(line) + ": " + what);
}

StatusOr<BenchPrompt> ParsePromptObject(const nlohmann::json& j, const std::string& name, size_t line) {
  if (!j.is_object()) return LineError(name, line, "expected a JSON object");
  const int kinds = j.contains("prompt") + j.contains("prompt_token_ids") + j.contains("messages");
  if (kinds != 1) {
    return LineError(name, line, "expected exactly one of \"prompt\", \"prompt_token_ids\" or \"messages\"");
  }
  BenchPrompt p;
  if (j.contains("prompt")) {
    if (!j["prompt"].is_string() || j["prompt"].get<std::string>().empty()) {
      return LineError(name, line, "\"prompt\" must be a non-empty string");
    }
    p.kind = BenchPrompt::Kind::kText;
    p.text = j["prompt"].get<std::string>();
  } else if (j.contains("prompt_token_ids")) {
    const auto& ids = j["prompt_token_ids"];
    if (!ids.is_array() || ids.empty()) {
      return LineError(name, line, "\"prompt_token_ids\" must be a non-empty array of integers");
    }
    p.kind = BenchPrompt::Kind::kTokenIds;
    for (const auto& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        return LineError(name, line, "\"prompt_token_ids\" must be a non-empty array of integers");
      }
      p.token_ids.push_back(id.get<int32_t>());
    }
    p.input_tokens = static_cast<int64_t>(p.token_ids.size());
  } else {
    const auto& msgs = j["messages"];
    if (!msgs.is_array() || msgs.empty()) {
      return LineError(name, line, "\"messages\" must be a non-empty array of {\"role\", \"content\"}");
    }
    p.kind = BenchPrompt::Kind::kChat;
    for (size_t i = 0; i < msgs.size(); ++i) {
      const auto& m = msgs[i];
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !m["content"].is_string()) {
        return LineError(name, line, "messages[" + std::to_string(i) + "] must be {\"role\": string, \"content\": string}");
      }
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant") {
        return LineError(name, line, "messages[" + std::to_string(i) + "].role must be system, user or assistant, found '" + role + "'");
      }
      p.chat.emplace_back(role, m["content"].get<std::string>());
    }
    if (j.contains("enable_thinking")) {
      if (!j["enable_thinking"].is_boolean()) return LineError(name, line, "\"enable_thinking\" must be true or false");
      p.enable_thinking = j["enable_thinking"].get<bool>();
    }
  }
  if (j.contains("max_tokens")) {
    const auto& mt = j["max_tokens"];
    if (!mt.is_number_integer() || mt.get<int64_t>() <= 0 || mt.get<int64_t>() > UINT32_MAX) {
      return LineError(name, line, "\"max_tokens\" must be a positive integer");
    }
    p.max_tokens = mt.get<uint32_t>();
  }
  return p;
}

}  // namespace

StatusOr<std::vector<BenchPrompt>> MakeRandomPrompts(const RandomDatasetOptions& o) {
  if (o.input_len.lo < 1) return InvalidArgumentError("--input-len: prompts need at least 1 token");
  if (o.output_len.lo < 1) return InvalidArgumentError("--output-len: requests need at least 1 output token");
  if (o.vocab_size <= 0) return InvalidArgumentError("random dataset: the model reports no vocabulary size");
  const int32_t id_limit = std::min(o.vocab_size, kQwen3RegularTokens);
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> id_dist(0, id_limit - 1);
  std::vector<BenchPrompt> out(static_cast<size_t>(o.count));
  for (BenchPrompt& p : out) {
    p.kind = BenchPrompt::Kind::kTokenIds;
    const int64_t n = Draw(o.input_len, rng);
    p.max_tokens = static_cast<uint32_t>(Draw(o.output_len, rng));
    p.token_ids.resize(static_cast<size_t>(n));
    for (int32_t& id : p.token_ids) id = id_dist(rng);
    p.input_tokens = n;
  }
  return out;
}

StatusOr<std::vector<BenchPrompt>> ParseJsonlPrompts(const std::string& contents, const std::string& name,
                                                     IntRange default_output_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<BenchPrompt> out;
  std::istringstream in(contents);
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = name + ":" + std::to_string(number);
    DMS_RETURN_IF_ERROR(CheckJsonLimits(line, kJsonLineLimits, where, "JSON"));
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return LineError(name, number, "not valid JSON");
    DMS_ASSIGN_OR_RETURN(BenchPrompt p, ParsePromptObject(j, name, number));
    if (p.max_tokens == 0) p.max_tokens = static_cast<uint32_t>(Draw(default_output_len, rng));
    out.push_back(std::move(p));
  }
  if (out.empty()) return InvalidArgumentError(name + ": no prompts (expected one JSON object per line)");
  return out;
}

StatusOr<std::vector<BenchPrompt>> LoadJsonlPrompts(const std::string& path, IntRange default_output_len,
                                                    uint64_t seed) {
  DMS_ASSIGN_OR_RETURN(std::string contents, ReadTextFile(path, "--dataset-path"));
  return ParseJsonlPrompts(contents, path, default_output_len, seed);
}

void ToGenerateRequest(const BenchPrompt& p, dms::v1::GenerateRequest* r) {
  if (p.kind == BenchPrompt::Kind::kText) {
    r->set_prompt(p.text);
  } else {
    for (int32_t id : p.token_ids) r->add_prompt_token_ids(id);
  }
  r->set_max_tokens(p.max_tokens);
}

void ToChatRequest(const BenchPrompt& p, dms::v1::ChatRequest* r) {
  for (const auto& [role, content] : p.chat) {
    auto* m = r->add_messages();
    m->set_role(role);
    m->set_content(content);
  }
  if (p.enable_thinking.has_value()) r->set_enable_thinking(*p.enable_thinking);
  r->set_max_tokens(p.max_tokens);
}

}  // namespace dms::client

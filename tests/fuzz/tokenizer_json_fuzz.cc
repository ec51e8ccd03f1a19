// Fuzz target: ReadTokenizerJson, the streaming tokenizer.json reader, over
// arbitrary text (the input), against nlohmann's whole-file tree parse as the
// reference.
//
// Properties: text beyond kTokenizerJsonLimits (size, nesting) is refused
// with exactly that limit's line, and only then (fuzz_util.h,
// CheckJsonLimitsContract); otherwise it accepts exactly the texts the tree
// parse accepts, and an error is one line starting with
// "tokenizer.json: invalid JSON: "; it
// streams root.model.vocab exactly when the reference's is an object and
// root.model.merges exactly when it is an array, and its tree is the
// reference's without what it streamed; the streamed vocab, a later
// duplicate key overriding an earlier one, is the reference's entry for entry
// (the id, or -1 where the value is not an integer in [0, INT32_MAX]); the
// streamed merges are the reference's entries of either form ([left, right]
// or "left right") in order, and the first entry of neither form has the
// reference's index.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tokenizer/tokenizer_json.h"
#include "tests/fuzz/fuzz_util.h"

namespace dms::fuzz {
namespace {

using nlohmann::json;

constexpr char kPath[] = "tokenizer.json";

const json* ModelMember(const json& root, const char* key, json::value_t type) {
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) return nullptr;
  const json& m = root["model"];
  if (!m.contains(key) || m[key].type() != type) return nullptr;
  return &m[key];
}

void CheckAgainstTree(const TokenizerJson& got, json ref) {
  const json* vocab = ModelMember(ref, "vocab", json::value_t::object);
  const json* merges = ModelMember(ref, "merges", json::value_t::array);
  FUZZ_CHECK(got.vocab_streamed == (vocab != nullptr), "vocab streamed");
  FUZZ_CHECK(got.merges_streamed == (merges != nullptr), "merges streamed");
  if (vocab != nullptr) {
    std::map<std::string, int64_t> want, have;
    for (const auto& [token, v] : vocab->items()) {
      const bool id = v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX;
      want[token] = id ? v.get<int64_t>() : -1;
    }
    for (const auto& [token, id] : got.vocab) have[token] = id;
    FUZZ_CHECK(have == want, std::to_string(have.size()) + " vs " + std::to_string(want.size()) + " entries");
  }
  if (merges != nullptr) {
    std::vector<std::pair<std::string, std::string>> want;
    int64_t bad = -1;
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& e = (*merges)[i];
      if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        want.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else if (e.is_string() && e.get_ref<const std::string&>().find(' ') != std::string::npos) {
        const std::string& s = e.get_ref<const std::string&>();
        const size_t space = s.find(' ');
        want.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (bad < 0) {
        bad = static_cast<int64_t>(i);
      }
    }
    FUZZ_CHECK(got.merges == want, std::to_string(got.merges.size()) + " vs " + std::to_string(want.size()) + " merges");
    FUZZ_CHECK(got.bad_merge_index == bad,
               std::to_string(got.bad_merge_index) + " vs " + std::to_string(bad));
  }
  if (vocab != nullptr) ref["model"].erase("vocab");
  if (merges != nullptr) ref["model"].erase("merges");
  FUZZ_CHECK(got.root == ref, Printable(got.root.dump()) + " vs " + Printable(ref.dump()));
}

}  // namespace
}  // namespace dms::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dms::fuzz;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  dms::StatusOr<dms::TokenizerJson> got = dms::ReadTokenizerJson(kPath, text);
  const std::string prefix = std::string(kPath) + ": JSON";
  if (CheckJsonLimitsContract(text, dms::kTokenizerJsonLimits, got.status(), prefix)) return 0;
  json ref = json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(got.ok() == !ref.is_discarded(),
             got.ok() ? "accepted what the tree parse refuses" : got.status().ToString());
  if (got.ok()) {
    CheckAgainstTree(*got, std::move(ref));
  } else {
    CheckError(got.status(), std::string(kPath) + ": invalid JSON: ");
  }
  return 0;
}

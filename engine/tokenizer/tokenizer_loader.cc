// Tokenizer::Load: reads tokenizer.json (+ tokenizer_config.json) and checks
// that the pipeline is the one this implementation reproduces exactly
// (NFC, Split regex Isolated + ByteLevel without regex, byte-level BPE,
// ByteLevel decoder). Anything else is refused with the field named.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_json.h"
#include "common/bounded_json.h"
#include "common/mapped_file.h"

namespace dms {

namespace fs = std::filesystem;
using nlohmann::json;

class TokenizerLoader {
 public:
  TokenizerLoader(std::string file) : file_(std::move(file)) {}

  StatusOr<std::unique_ptr<Tokenizer>> Load(const TokenizerJson& file, const json* config,
                                            Tokenizer::Options options);

 private:
  Status Error(const std::string& field, const std::string& what) const {
    return InvalidArgumentError(file_ + ": " + field + ": " + what);
  }
  Status CheckNormalizer(const json& root, Tokenizer* tok) const;
  Status CheckPreTokenizer(const json& root, std::string* pattern) const;
  Status CheckDecoder(const json& root) const;
  Status ReadModel(const TokenizerJson& file, Tokenizer::Options options, Tokenizer* tok) const;
  Status ReadAddedTokens(const json& root, Tokenizer* tok) const;

  std::string file_;
};

namespace {

std::string TypeOf(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string()
             ? j["type"].get<std::string>()
             : std::string(j.type_name());
}

bool FlagIs(const json& j, const char* key, bool value) {
  return !j.contains(key) || (j[key].is_boolean() && j[key].get<bool>() == value);
}

// tokenizer_config.json, within kTokenizerConfigJsonLimits.
StatusOr<json> ParseConfigFile(const std::string& path) {
  const JsonLimits& limits = kTokenizerConfigJsonLimits;
  DMS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, limits.max_bytes));
  DMS_RETURN_IF_ERROR(CheckJsonLimits(text, limits, path, "JSON"));
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return InvalidArgumentError(path + ": invalid JSON: " + e.what());
  }
}

}  // namespace

Status TokenizerLoader::CheckNormalizer(const json& root, Tokenizer* tok) const {
  const json& n = root.contains("normalizer") ? root["normalizer"] : json();
  if (n.is_null()) {
    tok->nfc_ = false;
    return OkStatus();
  }
  if (TypeOf(n) == "NFC") return OkStatus();
  if (TypeOf(n) == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array() &&
      n["normalizers"].size() == 1 && TypeOf(n["normalizers"][0]) == "NFC") {
    return OkStatus();
  }
  return Error("normalizer", "unsupported '" + TypeOf(n) + "' (expected NFC or null)");
}

Status TokenizerLoader::CheckPreTokenizer(const json& root, std::string* pattern) const {
  const std::string expected =
      "expected Sequence[Split(Regex, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)]";
  const json& p = root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json();
  if (TypeOf(p) != "Sequence" || !p.contains("pretokenizers") || !p["pretokenizers"].is_array() ||
      p["pretokenizers"].size() != 2) {
    return Error("pre_tokenizer", expected);
  }
  const json& split = p["pretokenizers"][0];
  const json& byte_level = p["pretokenizers"][1];
  if (TypeOf(split) != "Split" || !split.contains("pattern") || !split["pattern"].is_object() ||
      split.value("behavior", "") != "Isolated" || !FlagIs(split, "invert", false)) {
    return Error("pre_tokenizer.pretokenizers[0]", expected);
  }
  const json& pat = split["pattern"];
  if (pat.contains("Regex") && pat["Regex"].is_string()) {
    *pattern = pat["Regex"].get<std::string>();
  } else if (pat.contains("String") && pat["String"].is_string()) {
    *pattern = "\\Q" + pat["String"].get<std::string>() + "\\E";
  } else {
    return Error("pre_tokenizer.pretokenizers[0].pattern", "expected {\"Regex\": string}");
  }
  if (TypeOf(byte_level) != "ByteLevel" || !FlagIs(byte_level, "add_prefix_space", false) ||
      !FlagIs(byte_level, "use_regex", false)) {
    return Error("pre_tokenizer.pretokenizers[1]", expected);
  }
  return OkStatus();
}

Status TokenizerLoader::CheckDecoder(const json& root) const {
  const json& d = root.contains("decoder") ? root["decoder"] : json();
  if (TypeOf(d) != "ByteLevel") {
    return Error("decoder", "unsupported '" + TypeOf(d) + "' (expected ByteLevel)");
  }
  return OkStatus();
}

Status TokenizerLoader::ReadModel(const TokenizerJson& file, Tokenizer::Options options,
                                  Tokenizer* tok) const {
  const json& root = file.root;
  if (!root.contains("model") || TypeOf(root["model"]) != "BPE") {
    return Error("model.type", "expected \"BPE\"");
  }
  const json& m = root["model"];
  if (!FlagIs(m, "byte_fallback", false)) return Error("model.byte_fallback", "must be false");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m[key].is_null() && m[key] != "") {
      return Error(std::string("model.") + key, "must be empty");
    }
  }
  if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"] != 0.0) {
    return Error("model.dropout", "must be null (dropout makes encoding random)");
  }
  // Streamed by ReadTokenizerJson; absent or of another type, they stay in the tree.
  if (!file.vocab_streamed) return Error("model.vocab", "expected an object");
  BpeModel::Vocab vocab;
  vocab.reserve(file.vocab.size());
  for (const auto& [token, id] : file.vocab) vocab.insert_or_assign(token, static_cast<int32_t>(id));
  // Entries whose final value (a later duplicate key wins) is not an id:
  // the smallest such token is named, as the sorted tree named it.
  const std::string* bad = nullptr;
  for (const auto& [token, id] : file.vocab) {
    if (id < 0 && vocab.at(token) < 0 && (bad == nullptr || token < *bad)) bad = &token;
  }
  if (bad != nullptr) {
    return Error("model.vocab[\"" + *bad + "\"]", "expected a non-negative integer id");
  }
  if (!file.merges_streamed) return Error("model.merges", "expected an array");
  if (file.bad_merge_index >= 0) {
    return Error("model.merges[" + std::to_string(file.bad_merge_index) + "]",
                 "expected [\"left\", \"right\"] or \"left right\"");
  }
  auto bpe = BpeModel::Create(std::move(vocab), file.merges, m.value("ignore_merges", false),
                              options.word_cache_entries);
  if (!bpe.ok()) return InvalidArgumentError(file_ + ": " + bpe.status().message());
  tok->bpe_ = std::move(bpe).value();
  return OkStatus();
}

Status TokenizerLoader::ReadAddedTokens(const json& root, Tokenizer* tok) const {
  if (!root.contains("added_tokens") || root["added_tokens"].is_null()) return OkStatus();
  const json& list = root["added_tokens"];
  if (!list.is_array()) return Error("added_tokens", "expected an array");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    std::string field = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        !t.contains("content") || !t["content"].is_string() || t["content"] == "") {
      return Error(field, "expected {\"id\": integer, \"content\": non-empty string, ...}");
    }
    if (!FlagIs(t, "single_word", false)) return Error(field + ".single_word", "true is not supported");
    if (!FlagIs(t, "normalized", false)) return Error(field + ".normalized", "true is not supported");
    AddedToken token;
    token.id = t["id"].get<int32_t>();
    token.content = t["content"].get<std::string>();
    token.special = t.value("special", false);
    token.lstrip = t.value("lstrip", false);
    token.rstrip = t.value("rstrip", false);
    if (token.id < 0) return Error(field + ".id", "must be non-negative");
    if (token.id > kMaxTokenId) {
      return Error(field + ".id", "must be at most " + std::to_string(kMaxTokenId));
    }
    tok->added_.Add(std::move(token));
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Tokenizer>> TokenizerLoader::Load(const TokenizerJson& file,
                                                           const json* config,
                                                           Tokenizer::Options options) {
  const json& root = file.root;
  if (!root.is_object()) return Error("(root)", "expected a JSON object");
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  DMS_RETURN_IF_ERROR(CheckNormalizer(root, tok.get()));
  std::string pattern;
  DMS_RETURN_IF_ERROR(CheckPreTokenizer(root, &pattern));
  DMS_RETURN_IF_ERROR(CheckDecoder(root));
  auto split = SplitRegex::Compile(pattern);
  if (!split.ok()) return Error("pre_tokenizer.pretokenizers[0].pattern", split.status().message());
  tok->split_ = std::move(split).value();
  DMS_RETURN_IF_ERROR(ReadModel(file, options, tok.get()));
  DMS_RETURN_IF_ERROR(ReadAddedTokens(root, tok.get()));

  // Bytes of every id, so Decode is a lookup and a copy.
  size_t size = tok->bpe_->vocab_size();
  for (const AddedToken& t : tok->added_.tokens()) size = std::max(size, static_cast<size_t>(t.id) + 1);
  tok->id_bytes_.assign(size, std::string());
  tok->special_.assign(size, 0);
  const ByteLevelMap& map = ByteLevelMap::Get();
  for (size_t id = 0; id < tok->bpe_->vocab_size(); ++id) {
    map.AppendTokenBytes(tok->bpe_->IdToToken(static_cast<int32_t>(id)), &tok->id_bytes_[id]);
  }
  for (const AddedToken& t : tok->added_.tokens()) {
    tok->id_bytes_[t.id].clear();
    map.AppendTokenBytes(t.content, &tok->id_bytes_[t.id]);
    tok->special_[t.id] = t.special ? 1 : 0;
  }

  if (config != nullptr && config->contains("eos_token")) {
    const json& eos = (*config)["eos_token"];
    if (eos.is_string()) {
      tok->eos_token_ = eos.get<std::string>();
    } else if (eos.is_object() && eos.contains("content") && eos["content"].is_string()) {
      tok->eos_token_ = eos["content"].get<std::string>();
    }
  }
  if (config != nullptr && config->contains("chat_template") && (*config)["chat_template"].is_string()) {
    tok->chat_template_ = (*config)["chat_template"].get<std::string>();
  }
  tok->eos_id_ = tok->TokenToId(tok->eos_token_);
  tok->endoftext_id_ = tok->TokenToId("<|endoftext|>");
  tok->im_start_id_ = tok->TokenToId("<|im_start|>");
  tok->im_end_id_ = tok->TokenToId("<|im_end|>");
  if (tok->eos_id_ < 0) {
    return InvalidArgumentError(file_ + ": eos_token '" + tok->eos_token_ + "' is not in the vocab");
  }
  return tok;
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  return Load(path, Options());
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path, Options options) {
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) file = (fs::path(path) / "tokenizer.json").string();
  if (!fs::exists(file, ec)) return NotFoundError(file + ": no such file");
  fs::path config_path = fs::path(file).parent_path() / "tokenizer_config.json";
  json config;
  bool have_config = fs::exists(config_path, ec);
  if (have_config) {
    DMS_ASSIGN_OR_RETURN(config, ParseConfigFile(config_path.string()));
    if (!config.is_object()) {
      return InvalidArgumentError(config_path.string() + ": expected a JSON object");
    }
  }
  DMS_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(file));
  const std::string_view text(reinterpret_cast<const char*>(mapped.data()), mapped.size());
  DMS_ASSIGN_OR_RETURN(TokenizerJson parsed, ReadTokenizerJson(file, text));
  return TokenizerLoader(file).Load(parsed, have_config ? &config : nullptr, options);
}

}  // namespace dms

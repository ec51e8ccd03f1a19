#include "engine/model/demo_model.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "engine/model/checkpoint.h"
#include "engine/model/demo_weights.h"
#include "engine/model/safetensors_writer.h"

namespace dms {

namespace fs = std::filesystem;

namespace {

struct Geometry {
  const char* name;
  int layers, hidden, q_heads, kv_heads, head_dim, intermediate, vocab, window;
  bool tied;
};

// tiny: the real Qwen3 vocabulary (so the real tokenizer works) on a small
//   body; tied so the file stays < 100 MB (the embedding is 78 MB of it).
// small: the mid-size CPU benchmark model (Qwen3-0.6B widths, 8 layers).
// qwen3-8b: exactly Qwen3-8B's geometry (~16.4 GB of bf16).
constexpr Geometry kPresets[] = {
    {"tiny", 4, 256, 4, 2, 64, 768, 151936, 16, true},
    {"small", 8, 1024, 16, 8, 128, 3072, 151936, 64, true},
    {"qwen3-8b", 36, 4096, 32, 8, 128, 12288, 151936, 512, false},
};

// The Qwen3 tokenizer has 151643 regular tokens and 26 special tokens.
constexpr int kQwen3TokenizerIds = 151669;

Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  if (!f) return InternalError(path + ": cannot write");
  return OkStatus();
}

// Copies the tokenizer files that exist; says why not in *note otherwise.
Status CopyTokenizer(const std::string& from, const std::string& to, int vocab_size,
                     bool* copied, std::string* note) {
  *copied = false;
  if (from.empty()) {
    *note = "no tokenizer directory given";
    return OkStatus();
  }
  if (!fs::exists(from + "/tokenizer.json")) {
    *note = "tokenizer not found (" + from + "/tokenizer.json is missing)";
    return OkStatus();
  }
  if (vocab_size < kQwen3TokenizerIds) {
    *note = "vocab_size " + std::to_string(vocab_size) + " is smaller than the Qwen3 tokenizer's " +
            std::to_string(kQwen3TokenizerIds) + " ids";
    return OkStatus();
  }
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                           "special_tokens_map.json"}) {
    const std::string src = from + "/" + name;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, to + "/" + name, fs::copy_options::overwrite_existing, ec);
    if (ec) return InternalError(src + ": cannot copy: " + ec.message());
  }
  *copied = true;
  return OkStatus();
}

}  // namespace

std::string DemoPresetNames() {
  std::string s;
  for (const Geometry& g : kPresets) s += (s.empty() ? "" : ", ") + std::string(g.name);
  return s;
}

StatusOr<std::string> DemoConfigJson(const DemoModelOptions& o) {
  const Geometry* preset = nullptr;
  for (const Geometry& g : kPresets) {
    if (o.preset == g.name) preset = &g;
  }
  if (preset == nullptr) {
    return InvalidArgumentError("make-model: unknown preset '" + o.preset + "' (expected one of " +
                                DemoPresetNames() + ")");
  }
  const int layers = o.num_layers.value_or(preset->layers);
  // nlohmann::json keeps keys sorted, as transformers writes config.json.
  nlohmann::json j;
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = 151643;  // <|endoftext|>
  j["eos_token_id"] = 151645;  // <|im_end|>
  j["head_dim"] = o.head_dim.value_or(preset->head_dim);
  j["hidden_act"] = "silu";
  j["hidden_size"] = o.hidden_size.value_or(preset->hidden);
  j["initializer_range"] = 0.02;
  j["intermediate_size"] = o.intermediate_size.value_or(preset->intermediate);
  j["max_position_embeddings"] = 40960;
  j["max_window_layers"] = layers;
  j["model_type"] = "qwen3";
  j["num_attention_heads"] = o.num_q_heads.value_or(preset->q_heads);
  j["num_hidden_layers"] = layers;
  j["num_key_value_heads"] = o.num_kv_heads.value_or(preset->kv_heads);
  j["rms_norm_eps"] = 1e-6;
  j["rope_scaling"] = nullptr;
  j["rope_theta"] = 1000000.0;
  j["sliding_window"] = nullptr;
  j["tie_word_embeddings"] = o.tie_word_embeddings.value_or(preset->tied);
  j["torch_dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["use_sliding_window"] = false;
  j["vocab_size"] = o.vocab_size.value_or(preset->vocab);
  if (o.variant != DemoDmsVariant::kNone) {
    j["dms_alpha_scale"] = 100.0;
    j["dms_initial_alpha_offset"] = 5.0;
    j["dms_window_size"] = o.window_size.value_or(preset->window);
    // Informational: the compression the eviction rate gives on long sequences.
    const double cr = o.evict_rate < 0.999 ? 1.0 / (1.0 - o.evict_rate) : 1000.0;
    j["dms_cr"] = std::round(cr * 1000.0) / 1000.0;
    j["dms_separate_alpha"] = o.variant == DemoDmsVariant::kProjection;
    j["dms_alpha_per"] = "head";
    j["dms_disable_eviction"] = false;
  }
  std::string text = j.dump(2) + "\n";
  DMS_RETURN_IF_ERROR(ParseModelConfig(text, "make-model").status());
  return text;
}

StatusOr<DemoModelReport> MakeDemoModel(const std::string& out_dir,
                                        const DemoModelOptions& o) {
  DMS_ASSIGN_OR_RETURN(std::string config_text, DemoConfigJson(o));
  DemoModelReport report;
  DMS_ASSIGN_OR_RETURN(report.config, ParseModelConfig(config_text, "make-model"));
  DMS_ASSIGN_OR_RETURN(DemoWeights weights,
                       DemoWeights::Create(report.config, o.seed, o.evict_rate));

  std::error_code ec;
  if (fs::exists(out_dir, ec)) {
    if (!fs::is_directory(out_dir, ec)) {
      return AlreadyExistsError(out_dir + ": exists and is not a directory");
    }
    if (!fs::is_empty(out_dir, ec)) {
      return AlreadyExistsError(out_dir + ": already exists and is not empty");
    }
  }
  fs::create_directories(out_dir, ec);
  if (ec) return InternalError(out_dir + ": cannot create directory: " + ec.message());

  SafetensorsWriteOptions write;
  write.threads = o.threads;
  write.max_shard_bytes = o.max_shard_bytes;
  TensorFillFn fill = [&weights](size_t t, uint64_t off, size_t n, uint8_t* out) {
    weights.Fill(t, off, n, out);
  };
  DMS_ASSIGN_OR_RETURN(report.files,
                       WriteSafetensorsCheckpoint(out_dir, weights.specs(), fill, write));
  // config.json last: a directory without it is visibly incomplete.
  DMS_RETURN_IF_ERROR(WriteTextFile(out_dir + "/config.json", config_text));
  report.files.insert(report.files.begin(), "config.json");
  DMS_RETURN_IF_ERROR(CopyTokenizer(o.tokenizer_dir, out_dir, report.config.vocab_size,
                                    &report.tokenizer_copied, &report.tokenizer_note));

  DMS_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Load(out_dir));
  report.num_parameters = ckpt->num_parameters();
  for (const auto& f : ckpt->files()) report.total_bytes += f->size();
  return report;
}

}  // namespace dms

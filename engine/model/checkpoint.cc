#include "engine/model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <filesystem>
#include <map>
#include <set>

#include "engine/model/json_fields.h"
#include "engine/model/tensor_layout.h"
#include "common/bounded_json.h"
#include "common/mapped_file.h"
#include "common/text_escape.h"

namespace dms {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

// Whether `path` exists; false also when it cannot be checked (a name past
// NAME_MAX, say), where the throwing overload would abort the process.
bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  TensorView v;
  v.shape = shape;
  return v.ShapeString();
}

// Where each tensor name resolves to, plus the file named in "missing tensor"
// errors (the single file, or the index for sharded checkpoints).
struct TensorIndex {
  std::map<std::string, const TensorView*> by_name;
  std::string missing_source;
};

Status IndexSingleFile(const std::string& dir, std::vector<std::unique_ptr<SafetensorsFile>>* files,
                       TensorIndex* index) {
  const std::string path = dir + "/" + kSingleFile;
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
  for (const auto& [name, view] : file->tensors()) index->by_name[name] = &view;
  index->missing_source = path;
  files->push_back(std::move(file));
  return OkStatus();
}

// Reads model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard}}.
Status IndexShards(const std::string& dir, std::vector<std::unique_ptr<SafetensorsFile>>* files,
                   TensorIndex* index) {
  const std::string idx_path = dir + "/" + kIndexFile;
  DMS_ASSIGN_OR_RETURN(std::string text,
                       ReadFileToString(idx_path, kShardIndexJsonLimits.max_bytes));
  DMS_ASSIGN_OR_RETURN(json j, ParseBoundedJson(text, kShardIndexJsonLimits, idx_path, "index"));
  if (!j.is_object()) {
    return InvalidArgumentError(idx_path + ": expected a JSON object, found " +
                                json_fields::Describe(j));
  }
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) {
    return InvalidArgumentError(idx_path + ": missing 'weight_map' object");
  }
  if (wm->empty()) return InvalidArgumentError(idx_path + ": weight_map is empty");
  std::map<std::string, std::vector<std::string>> tensors_by_shard;  // sorted by shard name
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string where = idx_path + ": weight_map: " + EscapeText(it.key());
    if (!it->is_string()) {
      return InvalidArgumentError(where + ": expected a shard file name, found " +
                                  json_fields::Describe(*it));
    }
    const std::string shard = it->get<std::string>();
    // Shards must live in the model directory: no paths, no "..".
    if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
      return InvalidArgumentError(where + ": shard '" + EscapeText(shard) +
                                  "' must be a file name inside the model directory");
    }
    if (!Exists(dir + "/" + shard)) {
      return NotFoundError(where + ": shard file '" + EscapeText(shard) + "' not found");
    }
    tensors_by_shard[shard].push_back(it.key());
  }
  for (const auto& [shard, names] : tensors_by_shard) {
    const std::string path = dir + "/" + shard;
    DMS_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(path));
    for (const std::string& name : names) {
      const TensorView* view = file->Find(name);
      if (view == nullptr) {
        // The name comes from the index file: escaped, so the error stays one line.
        return DataLossError(path + ": missing tensor " + EscapeText(name) + " (listed in " +
                             kIndexFile + ")");
      }
      index->by_name[name] = view;
    }
    files->push_back(std::move(file));
  }
  index->missing_source = idx_path;
  return OkStatus();
}

const TensorView** SlotPointer(ModelWeights* w, const TensorSlot& slot) {
  if (slot.layer < 0) {
    switch (slot.role) {
      case TensorRole::kEmbedTokens: return &w->embed_tokens;
      case TensorRole::kFinalNorm: return &w->final_norm;
      case TensorRole::kLmHead: return &w->lm_head;
      default: return nullptr;
    }
  }
  LayerWeights& l = w->layers[slot.layer];
  switch (slot.role) {
    case TensorRole::kInputNorm: return &l.input_layernorm;
    case TensorRole::kQProj: return &l.q_proj;
    case TensorRole::kKProj: return &l.k_proj;
    case TensorRole::kVProj: return &l.v_proj;
    case TensorRole::kOProj: return &l.o_proj;
    case TensorRole::kQBias: return &l.q_bias;
    case TensorRole::kKBias: return &l.k_bias;
    case TensorRole::kVBias: return &l.v_bias;
    case TensorRole::kOBias: return &l.o_bias;
    case TensorRole::kQNorm: return &l.q_norm;
    case TensorRole::kKNorm: return &l.k_norm;
    case TensorRole::kDmsAlphaNorm: return &l.dms_proj_alpha_norm;
    case TensorRole::kDmsAlpha: return &l.dms_proj_alpha;
    case TensorRole::kPostAttentionNorm: return &l.post_attention_layernorm;
    case TensorRole::kGateProj: return &l.gate_proj;
    case TensorRole::kUpProj: return &l.up_proj;
    case TensorRole::kDownProj: return &l.down_proj;
    default: return nullptr;
  }
}

// The config's layer count against the weights: at most the number of
// distinct N in "model.layers.N." names, checked before anything is
// allocated per layer (a config may claim millions).
Status CheckLayersPresent(const std::string& dir, const ModelConfig& config,
                          const TensorIndex& index) {
  constexpr std::string_view kPrefix = "model.layers.";
  std::set<int64_t> layers;
  for (const auto& [name, view] : index.by_name) {
    if (name.rfind(kPrefix, 0) != 0) continue;
    const char* first = name.data() + kPrefix.size();
    const char* last = name.data() + name.size();
    int64_t n = 0;
    auto [end, ec] = std::from_chars(first, last, n);
    if (ec == std::errc() && end < last && *end == '.') layers.insert(n);
  }
  if (static_cast<size_t>(config.num_layers) > layers.size()) {
    return InvalidArgumentError(dir + "/config.json: num_hidden_layers (" +
                                std::to_string(config.num_layers) +
                                ") is more than the layers in " + index.missing_source + " (" +
                                std::to_string(layers.size()) + ")");
  }
  return OkStatus();
}

// Maps the weights (the single file, else the shards the index lists) and
// parses their headers; no tensor is bound yet.
Status IndexWeights(const std::string& dir, std::vector<std::unique_ptr<SafetensorsFile>>* files,
                    TensorIndex* index, bool* sharded) {
  // Hugging Face prefers the single file when both exist.
  if (Exists(dir + "/" + kSingleFile)) return IndexSingleFile(dir, files, index);
  if (Exists(dir + "/" + kIndexFile)) {
    *sharded = true;
    return IndexShards(dir, files, index);
  }
  return NotFoundError(dir + ": no " + kSingleFile + " or " + kIndexFile + " found");
}

std::string TrimTrailingSlashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

}  // namespace

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Load(const std::string& model_dir) {
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->dir_ = TrimTrailingSlashes(model_dir);
  const std::string& dir = ckpt->dir_;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFoundError(dir + ": no such model directory");
  DMS_ASSIGN_OR_RETURN(ckpt->config_, ReadModelConfigFile(dir));
  TensorIndex index;
  DMS_RETURN_IF_ERROR(IndexWeights(dir, &ckpt->files_, &index, &ckpt->sharded_));
  DMS_RETURN_IF_ERROR(CheckLayersPresent(dir, ckpt->config_, index));
  ModelWeights& w = ckpt->weights_;
  w.layers.resize(ckpt->config_.num_layers);
  std::set<std::string> used;
  for (const TensorSlot& slot : ExpectedTensors(ckpt->config_)) {
    auto it = index.by_name.find(slot.name);
    if (it == index.by_name.end()) {
      return NotFoundError(index.missing_source + ": missing tensor " + slot.name);
    }
    const TensorView* view = it->second;
    if (view->shape != slot.shape) {
      return InvalidArgumentError(view->file + ": " + slot.name + ": expected shape " +
                                  ShapeToString(slot.shape) + ", found " + view->ShapeString());
    }
    *SlotPointer(&w, slot) = view;
    used.insert(slot.name);
  }
  if (ckpt->config_.tie_word_embeddings) w.lm_head = w.embed_tokens;
  for (const auto& [name, view] : index.by_name) {
    if (used.count(name) == 0) ckpt->unexpected_.push_back(name);
  }
  return ckpt;
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string dir = TrimTrailingSlashes(model_dir);
  DMS_ASSIGN_OR_RETURN(ModelConfig config, ReadModelConfigFile(dir));
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  TensorIndex index;
  bool sharded = false;
  DMS_RETURN_IF_ERROR(IndexWeights(dir, &files, &index, &sharded));
  DMS_RETURN_IF_ERROR(CheckLayersPresent(dir, config, index));
  return config;
}

std::vector<const TensorView*> Checkpoint::UsedTensors() const {
  std::vector<const TensorView*> out;
  std::set<const TensorView*> seen;
  auto add = [&](const TensorView* t) {
    if (t != nullptr && seen.insert(t).second) out.push_back(t);
  };
  add(weights_.embed_tokens);
  for (const LayerWeights& l : weights_.layers) {
    for (const TensorView* t :
         {l.q_proj, l.q_bias, l.k_proj, l.k_bias, l.v_proj, l.v_bias, l.o_proj, l.o_bias,
          l.q_norm, l.k_norm, l.dms_proj_alpha_norm, l.dms_proj_alpha, l.gate_proj, l.up_proj,
          l.down_proj, l.input_layernorm, l.post_attention_layernorm}) {
      add(t);
    }
  }
  add(weights_.final_norm);
  add(weights_.lm_head);
  return out;
}

int64_t Checkpoint::num_parameters() const {
  int64_t n = 0;
  for (const TensorView* t : UsedTensors()) n += t->numel();
  return n;
}

}  // namespace dms

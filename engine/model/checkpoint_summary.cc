// Checkpoint::SummaryJson: what `dms-engine info` prints about a loaded model.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>

#include "engine/model/checkpoint.h"

namespace dms {

std::string Checkpoint::SummaryJson(int indent) const {
  nlohmann::ordered_json j;
  j["model_dir"] = dir_;
  j["config"] = nlohmann::ordered_json::parse(ModelConfigToJson(config_, -1));
  j["num_parameters"] = num_parameters();

  // Tensors the engine uses, per dtype (the tied head is the embedding).
  std::map<std::string, int64_t> dtype_tensors;
  std::vector<const TensorView*> used = UsedTensors();
  for (const TensorView* t : used) dtype_tensors[DTypeName(t->dtype)]++;
  j["num_tensors"] = used.size();
  j["dtypes"] = dtype_tensors;

  nlohmann::ordered_json files = nlohmann::ordered_json::array();
  uint64_t total_bytes = 0;
  for (const auto& file : files_) {
    nlohmann::ordered_json f;
    f["name"] = std::filesystem::path(file->path()).filename().string();
    f["bytes"] = file->size();
    f["tensors"] = file->tensors().size();
    total_bytes += file->size();
    files.push_back(std::move(f));
  }
  j["sharded"] = sharded_;
  j["files"] = std::move(files);
  j["total_bytes"] = total_bytes;
  j["unexpected_tensors"] = unexpected_;
  return j.dump(indent);
}

}  // namespace dms

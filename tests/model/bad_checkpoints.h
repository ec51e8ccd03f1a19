// Broken checkpoints and the exact one-line error each must produce. Used by
// checkpoint_test (Checkpoint::Load) and model_cli_test (dms-engine info).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/model/safetensors.h"
#include "common/text_escape.h"
#include "tests/model/model_test_util.h"

namespace dms::testing {

struct BadCheckpointCase {
  std::string name;
  // Builds the broken checkpoint in `dir`; returns the expected error message.
  std::function<std::string(const std::string& dir)> build;
};

// Writes a valid SmallConfig() checkpoint, then replaces model.safetensors.
inline std::string ReplaceWeights(const std::string& dir, const std::string& bytes) {
  WriteTestCheckpoint(dir, SmallConfig());
  WriteFile(dir + "/model.safetensors", bytes);
  return dir + "/model.safetensors";
}

// A valid SmallConfig() checkpoint whose config.json then gets `key` = `value`.
inline std::string ConfigWith(const std::string& dir, const std::string& key,
                              const nlohmann::json& value) {
  WriteTestCheckpoint(dir, SmallConfig());
  auto cfg = SmallConfig();
  cfg[key] = value;
  WriteFile(dir + "/config.json", cfg.dump());
  return dir + "/config.json";
}

// A one-tensor header whose `field` is `value` (raw JSON text).
inline std::string HeaderWith(const std::string& field, const std::string& value) {
  nlohmann::json entry{{"dtype", "F32"},
                       {"shape", nlohmann::json::array({1})},
                       {"data_offsets", nlohmann::json::array({0, 4})}};
  entry[field] = "VALUE";
  std::string header = nlohmann::json{{"w", entry}}.dump();
  return header.replace(header.find("\"VALUE\""), 7, value);
}

// Makes `path` a sparse file of `size` bytes (zeros past its contents).
inline void GrowSparse(const std::string& path, uint64_t size) {
  std::filesystem::resize_file(path, size);
}

// A sharded SmallConfig() checkpoint: 4 shards of <= 30 kB.
inline void WriteSharded(const std::string& dir) {
  WriteTestCheckpoint(dir, SmallConfig(), {}, 30000);
}

inline std::vector<BadCheckpointCase> BadCheckpointCases() {
  namespace fs = std::filesystem;
  const std::string idx = "/model.safetensors.index.json";
  return {
      {"FileShorterThanHeaderLength",
       [](const std::string& d) {
         std::string p = ReplaceWeights(d, std::string("\x10\x00\x00", 3));
         return p + ": file is 3 bytes, too short for a safetensors header (needs at least 8)";
       }},
      {"HeaderLengthPastEof",
       [](const std::string& d) {
         std::string p = ReplaceWeights(d, RawSafetensors("{}", 0, 1000));
         return p + ": header length 1000 runs past the end of the file (10 bytes)";
       }},
      {"MalformedJsonHeader",
       [](const std::string& d) {
         std::string p = ReplaceWeights(d, RawSafetensors("{\"a\": {\"dtype\": ", 0));
         return p + ": header is not valid JSON (syntax error at byte 16)";
       }},
      {"HeaderNotAnObject",
       [](const std::string& d) {
         std::string p = ReplaceWeights(d, RawSafetensors("[1, 2]", 0));
         return p + ": header is not a JSON object (found a list)";
       }},
      {"UnknownDtype",
       [](const std::string& d) {
         std::string p = ReplaceWeights(
             d, RawSafetensors(R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})", 2));
         return p + ": w: unsupported dtype 'Q4_K' (expected BF16, F16 or F32)";
       }},
      {"ShapeDisagreesWithOffsets",
       [](const std::string& d) {
         std::string p = ReplaceWeights(
             d, RawSafetensors(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8));
         return p + ": w: data_offsets [0, 8] hold 8 bytes, but shape [3] of BF16 needs 6";
       }},
      {"OverlappingTensors",
       [](const std::string& d) {
         std::string p = ReplaceWeights(
             d, RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               12));
         return p + ": tensors a [0, 8] and b [4, 12] overlap";
       }},
      {"OffsetsOutOfRange",
       [](const std::string& d) {
         std::string p = ReplaceWeights(
             d, RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4));
         return p + ": a: data_offsets [0, 8] run past the end of the data section (4 bytes)";
       }},
      {"TruncatedFile",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         const std::string p = d + "/model.safetensors";
         // model.norm.weight sorts last, so its bytes are the file's last 96.
         const auto size = fs::file_size(p);
         fs::resize_file(p, size - 10);
         std::string bytes = ReadFile(p);
         auto full =
             ParseSafetensorsHeader(reinterpret_cast<const uint8_t*>(bytes.data()), size, p);
         uint64_t data = size - full->data_start;
         return p + ": model.norm.weight: data_offsets [" + std::to_string(data - 96) + ", " +
                std::to_string(data) + "] run past the end of the data section (" +
                std::to_string(data - 10) + " bytes)";
       }},
      {"WrongShape",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig(), [](std::vector<TensorSpec>& s) {
           SpecNamed(s, "model.layers.0.self_attn.q_proj.weight").shape = {48, 64};
         });
         return d +
                "/model.safetensors: model.layers.0.self_attn.q_proj.weight: "
                "expected shape [64, 48], found [48, 64]";
       }},
      {"MissingTensor",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig(), [](std::vector<TensorSpec>& s) {
           RemoveSpec(s, "model.layers.1.mlp.up_proj.weight");
         });
         return d + "/model.safetensors: missing tensor model.layers.1.mlp.up_proj.weight";
       }},
      {"MissingLmHeadWhenUntied",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig(),
                             [](std::vector<TensorSpec>& s) { RemoveSpec(s, "lm_head.weight"); });
         return d + "/model.safetensors: missing tensor lm_head.weight";
       }},
      {"MissingProjectionAlpha",
       [](const std::string& d) {
         auto cfg = SmallConfig();
         cfg["dms_separate_alpha"] = true;
         WriteTestCheckpoint(d, cfg, [](std::vector<TensorSpec>& s) {
           RemoveSpec(s, "model.layers.0.self_attn.dms_proj_alpha.weight");
         });
         return d +
                "/model.safetensors: missing tensor model.layers.0.self_attn.dms_proj_alpha.weight";
       }},
      {"ProjectionAlphaWrongShape",
       [](const std::string& d) {
         auto cfg = SmallConfig();
         cfg["dms_separate_alpha"] = true;
         WriteTestCheckpoint(d, cfg, [](std::vector<TensorSpec>& s) {
           SpecNamed(s, "model.layers.1.self_attn.dms_proj_alpha.weight").shape = {4, 48};
         });
         return d +
                "/model.safetensors: model.layers.1.self_attn.dms_proj_alpha.weight: "
                "expected shape [2, 48], found [4, 48]";
       }},
      {"MissingBiasWithAttentionBias",
       [](const std::string& d) {
         auto cfg = SmallConfig();
         cfg["attention_bias"] = true;
         WriteTestCheckpoint(d, cfg, [](std::vector<TensorSpec>& s) {
           RemoveSpec(s, "model.layers.0.self_attn.k_proj.bias");
         });
         return d + "/model.safetensors: missing tensor model.layers.0.self_attn.k_proj.bias";
       }},
      {"UnsupportedConfigSlidingWindow",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         auto cfg = SmallConfig();
         cfg["use_sliding_window"] = true;
         cfg["sliding_window"] = 4096;
         WriteFile(d + "/config.json", cfg.dump());
         return d +
                "/config.json: unsupported config: use_sliding_window is true "
                "(sliding-window attention is not supported)";
       }},
      {"UnsupportedConfigYarn",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         auto cfg = SmallConfig();
         cfg["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
         WriteFile(d + "/config.json", cfg.dump());
         return d + "/config.json: rope_scaling type 'yarn' is not supported (only default RoPE)";
       }},
      {"UnsupportedModelType",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         auto cfg = SmallConfig();
         cfg["model_type"] = "llama";
         WriteFile(d + "/config.json", cfg.dump());
         return d + "/config.json: model_type 'llama' is not supported (only qwen3)";
       }},
      {"ConfigNotJson",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         WriteFile(d + "/config.json", "{\"model_type\": \"qwen3\",}");
         return d + "/config.json: config is not valid JSON (syntax error at byte 23)";
       }},
      {"NoConfig",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         fs::remove(d + "/config.json");
         return d + "/config.json: no such file";
       }},
      {"NoWeights",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         fs::remove(d + "/model.safetensors");
         return d + ": no model.safetensors or model.safetensors.index.json found";
       }},
      {"IndexNamesMissingShard",
       [idx](const std::string& d) {
         WriteSharded(d);
         fs::remove(d + "/model-00002-of-00004.safetensors");
         auto index = nlohmann::json::parse(ReadFile(d + idx));
         // The first tensor (by name) that lives in shard 2.
         std::string tensor;
         for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
           if (it->get<std::string>() == "model-00002-of-00004.safetensors") {
             tensor = it.key();
             break;
           }
         }
         return d + idx + ": weight_map: " + tensor +
                ": shard file 'model-00002-of-00004.safetensors' not found";
       }},
      {"IndexedTensorAbsentFromShard",
       [idx](const std::string& d) {
         WriteSharded(d);
         auto index = nlohmann::json::parse(ReadFile(d + idx));
         index["weight_map"]["model.layers.0.mlp.up_proj.weight"] =
             "model-00001-of-00004.safetensors";
         WriteFile(d + idx, index.dump(2));
         return d +
                "/model-00001-of-00004.safetensors: missing tensor "
                "model.layers.0.mlp.up_proj.weight (listed in model.safetensors.index.json)";
       }},
      {"IndexMissingTensor",
       [idx](const std::string& d) {
         WriteSharded(d);
         auto index = nlohmann::json::parse(ReadFile(d + idx));
         index["weight_map"].erase("model.norm.weight");
         WriteFile(d + idx, index.dump(2));
         return d + idx + ": missing tensor model.norm.weight";
       }},
      {"IndexShardOutsideModelDir",
       [idx](const std::string& d) {
         WriteSharded(d);
         auto index = nlohmann::json::parse(ReadFile(d + idx));
         index["weight_map"]["model.norm.weight"] = "../model-00001-of-00004.safetensors";
         WriteFile(d + idx, index.dump(2));
         return d + idx +
                ": weight_map: model.norm.weight: shard '../model-00001-of-00004.safetensors'"
                " must be a file name inside the model directory";
       }},
      {"IndexShardNameTooLong",  // past NAME_MAX: std::filesystem::exists threw (fuzz finding)
       [idx](const std::string& d) {
         WriteSharded(d);
         auto index = nlohmann::json::parse(ReadFile(d + idx));
         const std::string shard = std::string(300, 'x') + ".safetensors";
         index["weight_map"]["model.norm.weight"] = shard;
         WriteFile(d + idx, index.dump(2));
         return d + idx + ": weight_map: model.norm.weight: shard file '" + EscapeText(shard) +
                "' not found";
       }},
      {"IndexMalformed",
       [idx](const std::string& d) {
         WriteSharded(d);
         WriteFile(d + idx, "{\"weight_map\": {");
         return d + idx + ": index is not valid JSON (syntax error at byte 16)";
       }},
      {"IndexWithoutWeightMap",
       [idx](const std::string& d) {
         WriteSharded(d);
         WriteFile(d + idx, "{\"metadata\": {}}");
         return d + idx + ": missing 'weight_map' object";
       }},
      // Hostile inputs (docs/security.md): nesting, sizes, special files and
      // sizes that pass the per-field checks but cannot be served.
      {"HeaderNestedDeepInMetadata",
       [](const std::string& d) {
         const std::string header =
             "{\"__metadata__\": {\"x\": " + DeeplyNestedJson(100000) + "}}";
         std::string p = ReplaceWeights(d, RawSafetensors(header, 0));
         return p + ": header is nested deeper than 64 levels";
       }},
      {"HeaderNestedDeepInShape",
       [](const std::string& d) {
         std::string p =
             ReplaceWeights(d, RawSafetensors(HeaderWith("shape", DeeplyNestedJson(100000)), 4));
         return p + ": header is nested deeper than 64 levels";
       }},
      {"HeaderNestedDeepInDataOffsets",
       [](const std::string& d) {
         std::string p = ReplaceWeights(
             d, RawSafetensors(HeaderWith("data_offsets", DeeplyNestedJson(100000)), 4));
         return p + ": header is nested deeper than 64 levels";
       }},
      {"HeaderLargerThanLimit",
       [](const std::string& d) {
         // The declared header fits in the (sparse) file but is over 100 MB.
         std::string p = ReplaceWeights(d, RawSafetensors("{}", 0, 100'000'001));
         GrowSparse(p, 8 + 100'000'001);
         return p + ": header is larger than 100000000 bytes";
       }},
      {"ConfigNestedDeep",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         std::string text = SmallConfig().dump();
         text.insert(1, "\"x\": " + DeeplyNestedJson(100000) + ", ");
         WriteFile(d + "/config.json", text);
         return d + "/config.json: config is nested deeper than 64 levels";
       }},
      {"ConfigLargerThanLimit",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         GrowSparse(d + "/config.json", (1 << 20) + 1);
         return d + "/config.json: file is larger than 1048576 bytes";
       }},
      {"ConfigLinkedToDevZero",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         fs::remove(d + "/config.json");
         fs::create_symlink("/dev/zero", d + "/config.json");
         return d + "/config.json: not a regular file";
       }},
      {"IndexNestedDeep",
       [idx](const std::string& d) {
         WriteSharded(d);
         std::string text = ReadFile(d + idx);
         text.insert(1, "\"x\": " + DeeplyNestedJson(100000) + ", ");
         WriteFile(d + idx, text);
         return d + idx + ": index is nested deeper than 64 levels";
       }},
      {"IndexLargerThanLimit",
       [idx](const std::string& d) {
         WriteSharded(d);
         GrowSparse(d + idx, (16 << 20) + 1);
         return d + idx + ": file is larger than 16777216 bytes";
       }},
      {"TenMillionLayers",
       [](const std::string& d) {
         std::string p = ConfigWith(d, "num_hidden_layers", 10'000'000);
         return p + ": num_hidden_layers (10000000) is more than the layers in " + d +
                "/model.safetensors (2)";
       }},
      {"WindowLongerThanContext",
       [](const std::string& d) {
         std::string p = ConfigWith(d, "dms_window_size", 1 << 30);
         return p + ": dms_window_size (1073741824) is larger than max_position_embeddings (256)";
       }},
      {"ContextOfOnePosition",
       [](const std::string& d) {
         std::string p = ConfigWith(d, "max_position_embeddings", 1);
         return p + ": max_position_embeddings (1) must be between 16 and 1048576";
       }},
      {"TruncatedShard",
       [](const std::string& d) {
         WriteSharded(d);
         const std::string p = d + "/model-00003-of-00004.safetensors";
         fs::resize_file(p, 6);
         return p + ": file is 6 bytes, too short for a safetensors header (needs at least 8)";
       }},
  };
}

}  // namespace dms::testing

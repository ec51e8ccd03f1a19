// Fuzz target: model.safetensors.index.json of a sharded checkpoint (the
// input), read by Checkpoint::Load from a real directory that holds a tiny
// valid config.json and its shards (written once per process by the
// project's safetensors writer, plus one tensor the config does not use).
//
// Properties: an error is one non-empty line starting with the model
// directory's path; the writer's own index is accepted. An accepted index yields exactly the reference weights
// (same names, shapes and bytes in every slot as the writer's own index
// gives), and every tensor reported as unused is one the index lists. An
// index beyond kShardIndexJsonLimits (size, nesting) is refused with exactly
// that limit's line, and only then (fuzz_util.h, CheckJsonLimitsContract).
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/checkpoint.h"
#include "engine/model/safetensors_writer.h"
#include "engine/model/tensor_layout.h"
#include "tests/fuzz/fuzz_util.h"

namespace dms::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr char kConfig[] = R"({"model_type": "qwen3", "hidden_size": 8, "intermediate_size": 16,
  "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
  "vocab_size": 16, "max_position_embeddings": 64, "tie_word_embeddings": false,
  "dms_window_size": 4, "dms_separate_alpha": true})";

struct Fixture {
  std::string dir;
  std::string index_path;
  std::string writer_index;               // the index text the writer produced
  std::unique_ptr<Checkpoint> reference;  // loaded through the writer's own index
};

// Every weight slot, in a fixed order (null for absent optional ones).
std::vector<const TensorView*> Slots(const ModelWeights& w) {
  std::vector<const TensorView*> out = {w.embed_tokens, w.final_norm, w.lm_head};
  for (const LayerWeights& l : w.layers) {
    out.insert(out.end(), {l.input_layernorm, l.q_proj, l.k_proj, l.v_proj, l.o_proj, l.q_bias,
                           l.k_bias, l.v_bias, l.o_bias, l.q_norm, l.k_norm, l.post_attention_layernorm,
                           l.gate_proj, l.up_proj, l.down_proj, l.dms_proj_alpha_norm, l.dms_proj_alpha});
  }
  return out;
}

void RemoveDir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

const Fixture& GetFixture() {
  static Fixture* const kFixture = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/dms-fuzz-shards-XXXXXX";
    FUZZ_CHECK(::mkdtemp(tmpl.data()) != nullptr, "cannot create a temporary directory");
    auto* f = new Fixture{tmpl, tmpl + "/model.safetensors.index.json", "", nullptr};
    static std::string to_remove = f->dir;
    std::atexit([] { RemoveDir(to_remove); });

    std::ofstream(f->dir + "/config.json") << kConfig;
    StatusOr<ModelConfig> config = ParseModelConfig(kConfig, "config.json");
    FUZZ_CHECK(config.ok(), config.status().message());
    std::vector<TensorSpec> specs;
    for (const TensorSlot& s : ExpectedTensors(*config)) specs.push_back({s.name, DType::kBF16, s.shape});
    specs.push_back({"model.rotary_emb.inv_freq", DType::kF32, {2}});  // unused by the config
    SafetensorsWriteOptions opt;
    opt.max_shard_bytes = 700;  // several shards
    auto fill = [](size_t t, uint64_t off, size_t n, uint8_t* out) {
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((t * 131 + off + i) * 7 + 3);
    };
    StatusOr<std::vector<std::string>> written = WriteSafetensorsCheckpoint(f->dir, specs, fill, opt);
    FUZZ_CHECK(written.ok(), written.status().message());
    FUZZ_CHECK(written->size() > 3, "expected several shards");
    std::ifstream in(f->index_path, std::ios::binary);
    f->writer_index.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    StatusOr<std::unique_ptr<Checkpoint>> ref = Checkpoint::Load(f->dir);
    FUZZ_CHECK(ref.ok(), ref.status().message());
    f->reference = std::move(*ref);
    return f;
  }();
  return *kFixture;
}

void CheckAccepted(const Checkpoint& c, const Fixture& f, const std::string& index_text) {
  FUZZ_CHECK(c.sharded(), "loaded through the index but not marked sharded");
  const std::vector<const TensorView*> got = Slots(c.weights());
  const std::vector<const TensorView*> want = Slots(f.reference->weights());
  FUZZ_CHECK(got.size() == want.size(), "slot count");
  for (size_t i = 0; i < got.size(); ++i) {
    FUZZ_CHECK((got[i] == nullptr) == (want[i] == nullptr), "slot " + std::to_string(i) + " presence");
    if (got[i] == nullptr) continue;
    const std::string what = "slot " + std::to_string(i) + " (" + want[i]->name + ")";
    FUZZ_CHECK(got[i]->name == want[i]->name, what + " holds " + got[i]->name);
    FUZZ_CHECK(got[i]->shape == want[i]->shape && got[i]->dtype == want[i]->dtype, what + " shape or dtype");
    FUZZ_CHECK(got[i]->nbytes == want[i]->nbytes && std::memcmp(got[i]->data, want[i]->data, got[i]->nbytes) == 0,
               what + " bytes differ from the reference");
  }
  const nlohmann::json j = nlohmann::json::parse(index_text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), "accepted index shape");
  for (const std::string& name : c.unexpected_tensors()) {
    FUZZ_CHECK(j["weight_map"].contains(name), "unused tensor " + Printable(name) + " is not in the index");
  }
}

}  // namespace
}  // namespace dms::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dms::fuzz::GetFixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dms::fuzz;
  const Fixture& f = GetFixture();
  const std::string text(reinterpret_cast<const char*>(data), size);
  {
    std::ofstream out(f.index_path, std::ios::binary | std::ios::trunc);
    out << text;
    FUZZ_CHECK(out.good(), "cannot write " + f.index_path);
  }
  dms::StatusOr<std::unique_ptr<dms::Checkpoint>> c = dms::Checkpoint::Load(f.dir);
  FUZZ_CHECK(c.ok() || text != f.writer_index, "the writer's own index is refused: " + c.status().message());
  if (CheckJsonLimitsContract(text, dms::kShardIndexJsonLimits, c.status(), f.index_path + ": index")) {
    return 0;
  }
  if (c.ok()) {
    CheckAccepted(**c, f, text);
  } else {
    CheckError(c.status(), f.dir + "/");
  }
  return 0;
}

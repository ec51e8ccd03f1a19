#include "engine/runtime/model_loader.h"

#include <algorithm>
#include <filesystem>

namespace dms {

StatusOr<LoadedModel> LoadModel(const std::string& model_dir, const std::string& tokenizer_override) {
  LoadedModel m;
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Load(model_dir));
  m.checkpoint = std::move(ckpt);
  DMS_ASSIGN_OR_RETURN(m.generation_defaults, LoadGenerationConfig(model_dir));
  std::string tok_path = tokenizer_override;
  if (tok_path.empty() && std::filesystem::exists(model_dir + "/tokenizer.json")) tok_path = model_dir;
  if (!tok_path.empty()) {
    DMS_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::Load(tok_path));
    const int vocab = m.checkpoint->config().vocab_size;
    if (tok->vocab_size() > static_cast<size_t>(vocab)) {
      return InvalidArgumentError(tok_path + ": tokenizer has " + std::to_string(tok->vocab_size()) +
                                  " tokens but the model's vocab_size is " + std::to_string(vocab));
    }
    m.tokenizer = std::move(tok);
    m.tokenizer_path = tok_path;
  }
  m.eos_token_ids = m.checkpoint->config().eos_token_ids;
  if (m.tokenizer) {
    for (int32_t id : m.tokenizer->stop_ids()) m.eos_token_ids.push_back(id);
  }
  std::sort(m.eos_token_ids.begin(), m.eos_token_ids.end());
  m.eos_token_ids.erase(std::unique(m.eos_token_ids.begin(), m.eos_token_ids.end()),
                        m.eos_token_ids.end());
  return m;
}

}  // namespace dms

#include "engine/core/forward_batch.h"

#include <cstring>
#include <string>
#include <unordered_set>

#include "engine/core/sampler.h"

namespace dms {

Status ValidateForwardBatch(const ModelConfig& cfg, std::span<const ForwardChunk> batch,
                            const std::function<int64_t(SeqId)>& logical_tokens, int64_t* total_tokens) {
  std::unordered_set<SeqId> seen;
  int64_t total = 0;
  for (const ForwardChunk& c : batch) {
    const int64_t held = logical_tokens(c.seq);
    if (held < 0) return InvalidArgumentError("unknown sequence id " + std::to_string(c.seq));
    if (!seen.insert(c.seq).second) {
      return InvalidArgumentError("sequence " + std::to_string(c.seq) + " appears twice in a step");
    }
    if (c.tokens.empty()) return InvalidArgumentError("empty chunk for sequence " + std::to_string(c.seq));
    if (c.num_logits < 0 || c.num_logits > static_cast<int>(c.tokens.size())) {
      return InvalidArgumentError("num_logits " + std::to_string(c.num_logits) + " outside [0, " +
                                  std::to_string(c.tokens.size()) + "]");
    }
    if (c.sampling && (c.num_logits != 1 || c.full_logits)) {
      return InvalidArgumentError(
          "sampling on the backend needs num_logits 1 and full_logits false");
    }
    if (c.sampling) DMS_RETURN_IF_ERROR(ValidateSamplingParams(c.sampling->params));
    for (int32_t t : c.tokens) {
      if (t < 0 || t >= cfg.vocab_size) {
        return InvalidArgumentError("token id " + std::to_string(t) + " outside the vocabulary [0, " +
                                    std::to_string(cfg.vocab_size) + ")");
      }
    }
    const int64_t end = held + static_cast<int64_t>(c.tokens.size());
    if (cfg.max_position_embeddings > 0 && end > cfg.max_position_embeddings) {
      return InvalidArgumentError("sequence length " + std::to_string(end) + " exceeds max_position_embeddings " +
                                  std::to_string(cfg.max_position_embeddings));
    }
    total += static_cast<int64_t>(c.tokens.size());
  }
  if (total_tokens) *total_tokens = total;
  return OkStatus();
}

Status Backend::Forward(std::span<const ForwardChunk> batch, std::vector<float>* logits) {
  for (const ForwardChunk& c : batch) {
    if (!c.full_logits) {
      return InvalidArgumentError("Forward into a logits vector needs full_logits on every chunk");
    }
  }
  ForwardResult result;
  result.logits.swap(*logits);  // reuse the caller's buffer
  Status st = Forward(batch, &result);
  logits->swap(result.logits);
  return st;
}

void FinishForwardResult(std::span<const ForwardChunk> batch, int vocab,
                         std::vector<float>* all_rows,
                         const std::function<TokenHistory*(SeqId)>& history, SampleScratch* scratch,
                         ForwardResult* out) {
  out->summaries.clear();
  out->sampled.clear();
  size_t rows = 0, kept = 0;
  for (const ForwardChunk& c : batch) {
    for (int i = 0; i < c.num_logits; ++i, ++rows) {
      const float* row = all_rows->data() + rows * vocab;
      const std::span<const float> logits(row, vocab);
      out->summaries.push_back(SummarizeLogits(logits));
      out->sampled.emplace_back();
      if (c.sampling) {
        TokenHistory* h = history(c.seq);
        out->sampled.back() = SampleRow(c.sampling->params, logits, out->summaries.back(),
                                        c.sampling->uniform, *h, scratch);
        h->AddOutput(out->sampled.back().id);
      }
      if (!c.full_logits) continue;
      if (kept != rows) std::memmove(all_rows->data() + kept * vocab, row, sizeof(float) * vocab);
      ++kept;
    }
  }
  all_rows->resize(kept * vocab);
  out->logits.swap(*all_rows);
}

}  // namespace dms

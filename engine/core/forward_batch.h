// The argument contract of Backend::Forward, checked the same way by every
// backend (the messages are part of the contract; tests assert them).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "engine/core/backend.h"
#include "engine/core/sampler.h"

namespace dms {

// `logical_tokens(seq)` returns the tokens a sequence holds, or -1 when the id
// is unknown. On success *total_tokens is the step's token count.
// INVALID_ARGUMENT: unknown or repeated sequence, empty chunk, num_logits out
// of range, sampling without exactly one summarised row, token id outside the
// vocabulary, or a sequence growing past max_position_embeddings.
Status ValidateForwardBatch(const ModelConfig& config, std::span<const ForwardChunk> batch,
                            const std::function<int64_t(SeqId)>& logical_tokens, int64_t* total_tokens);

// For backends that compute every logit row in full (CPU): moves `all_rows`
// ([sum of num_logits, vocab]) into out->logits keeping only the rows of
// chunks with full_logits, summarises every row (SummarizeLogits) and samples
// the rows of chunks with sampling (SampleRow over history(seq), which then
// records the token).
void FinishForwardResult(std::span<const ForwardChunk> batch, int vocab,
                         std::vector<float>* all_rows,
                         const std::function<TokenHistory*(SeqId)>& history, SampleScratch* scratch,
                         ForwardResult* out);

}  // namespace dms

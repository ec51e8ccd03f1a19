// Sampling on the device. Greedy: the index of the largest logit per row, the
// lowest index on ties, NaN never chosen (as std::max_element over the row,
// for rows without NaN). The row summary gives the host sampler what greedy
// decoding needs (engine/core/sampler.h SummarizeLogits is the reference),
// so a step copies 16 bytes per greedy row to the host instead of the row.
//
// LaunchSampleRows samples every row on the device with the semantics of
// dms::Sampler::Sample (penalties, temperature, top-k, top-p, min-p, the draw
// walked in sorted order, logprobs of the raw row), keeping each sequence's
// penalty state on the device (kernels/sampling_rows.cu; docs/cuda.md).
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

// out[r] = argmax(logits[r, :vocab]);  logits: [rows, vocab] f32.
cudaError_t LaunchGreedyArgmax(const float* logits, int rows, int vocab, int32_t* out,
                               cudaStream_t stream);

// Field for field the host's dms::LogitSummary (engine/core/backend.h).
struct LogitRowSummary {
  int32_t argmax;
  float max_logit;
  double log_sum_exp;  // log(sum(exp(row - max_logit))) + max_logit
};

// Device scratch LaunchLogitSummary needs for `rows` rows of `vocab` logits.
size_t LogitSummaryScratchBytes(int rows, int vocab);

// out[r] = summary of logits[r, :vocab];  logits: [rows, vocab] f32.
// scratch: LogitSummaryScratchBytes(rows, vocab) bytes of device memory.
cudaError_t LaunchLogitSummary(const float* logits, int rows, int vocab, void* scratch,
                               LogitRowSummary* out, cudaStream_t stream);

// ---- Sampling every row on the device (kernels/sampling_rows.cu) ----

constexpr int kMaxTopLogprobs = 20;

// The sampling parameters of one logit row, as dms::SamplingParams plus the
// row's draw and penalty slot. Device memory, one per row.
struct RowSamplingParams {
  float temperature;         // 0 = greedy (argmax of the penalized row)
  int32_t top_k;             // <= 0 = off; 1 = greedy, as SamplingParams::greedy()
  float top_p;               // (0, 1]; 1 = off
  float min_p;               // [0, 1]; 0 = off
  float repetition_penalty;  // 1 = off (HF rule over seen tokens: prompt + output)
  float presence_penalty;    // 0 = off (OpenAI rule over output tokens)
  float frequency_penalty;   // 0 = off
  int32_t penalty_slot;      // row of the PenaltyState; -1 = none (no penalties, nothing recorded)
  int32_t num_logprobs;      // top-n logprobs of the raw row, 0..kMaxTopLogprobs
  double uniform;  // the draw in [0, 1): CounterUniform(seed, n) as the CPU sampler uses it
};

// One sampled row. logprob and top_logprobs are log-softmax values of the RAW
// logits (raw logit - log_sum_exp of the row's LogitRowSummary), as the CPU.
struct SampledRow {
  int32_t id;
  float logprob;
  int32_t top_ids[kMaxTopLogprobs];     // [0, min(num_logprobs, vocab)) valid, the rest -1
  float top_logprobs[kMaxTopLogprobs];  // most likely first, ties by lower id; the rest 0
};

// Per-sequence penalty state (what dms::Sampler keeps per request), device
// memory the caller owns: slot s is row s of both arrays.
//   seen   [num_slots, vocab] u8:   1 = the token is in the prompt or the output
//   counts [num_slots, vocab] i32:  output occurrences of the token
// Clear a slot when a sequence takes it, mark its prompt tokens seen, and let
// LaunchSampleRows record every sampled token (counts[id]++, seen[id] = 1).
struct PenaltyState {
  uint8_t* seen = nullptr;
  int32_t* counts = nullptr;
  int num_slots = 0;
};

// Bytes of device memory a PenaltyState of num_slots slots needs (both arrays).
size_t PenaltyStateBytes(int num_slots, int vocab);

// Zeroes slot `slot` (seen and counts) on `stream`.
cudaError_t ClearPenaltySlot(const PenaltyState& state, int slot, int vocab, cudaStream_t stream);

// seen[slot][tokens[i]] = 1 for i < n (tokens: device memory; out-of-range
// ids are ignored, as Sampler::AddPromptTokens).
cudaError_t LaunchMarkSeen(const PenaltyState& state, int slot, int vocab, const int32_t* tokens,
                           int n, cudaStream_t stream);

// Device scratch LaunchSampleRows needs (0 today: the kernel works in shared
// memory; kept so that callers size it like LogitSummaryScratchBytes).
size_t SampleRowsScratchBytes(int rows, int vocab);

// out[r] = the token dms::Sampler::Sample picks from logits[r, :vocab] given
// params[r] (same uniform, same penalty history), with its logprobs; then
// records it in the penalty slot params[r].penalty_slot.
//   logits:    [rows, vocab] f32 (finite or -inf; NaN counts as -inf)
//   summaries: [rows], LaunchLogitSummary of the same logits (log_sum_exp)
//   penalties: may be empty when no row has a penalty slot; at most one row
//              per slot in a launch
// One block per row, no host synchronisation, deterministic.
cudaError_t LaunchSampleRows(const float* logits, int rows, int vocab,
                             const RowSamplingParams* params, const LogitRowSummary* summaries,
                             const PenaltyState& penalties, void* scratch, SampledRow* out,
                             cudaStream_t stream);

}  // namespace dms::cuda

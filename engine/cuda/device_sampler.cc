#include "engine/cuda/device_sampler.h"

#include <cstring>

#include "engine/cuda/cuda_status.h"

namespace dms {
namespace {

bool HasPenalties(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

cuda::RowSamplingParams DeviceParams(const SampleRowRequest& row) {
  cuda::RowSamplingParams d{};
  d.temperature = 0;  // not sampled: an argmax nobody reads
  d.top_p = 1;
  d.repetition_penalty = 1;
  d.penalty_slot = -1;
  if (!row.sampling) return d;
  const SamplingParams& p = row.sampling->params;
  d.temperature = p.temperature;
  d.top_k = p.top_k;
  d.top_p = p.top_p;
  d.min_p = p.min_p;
  d.repetition_penalty = p.repetition_penalty;
  d.presence_penalty = p.presence_penalty;
  d.frequency_penalty = p.frequency_penalty;
  d.penalty_slot = HasPenalties(p) ? row.seq : -1;
  d.num_logprobs = p.logprobs;
  d.uniform = row.sampling->uniform;
  return d;
}

}  // namespace

Status DeviceSampler::Init(int max_sequences, int max_rows, int vocab) {
  vocab_ = vocab;
  max_rows_ = max_rows;
  // + 256: counts start at a 256-byte boundary after seen.
  DMS_RETURN_IF_ERROR(penalties_buffer_.Allocate(
      cuda::PenaltyStateBytes(max_sequences, vocab) + 256, "penalty state"));
  penalties_.num_slots = max_sequences;
  penalties_.seen = static_cast<uint8_t*>(penalties_buffer_.get());
  // counts after seen, 256-byte aligned.
  const size_t seen_bytes = (static_cast<size_t>(max_sequences) * vocab + 255) / 256 * 256;
  penalties_.counts =
      reinterpret_cast<int32_t*>(static_cast<char*>(penalties_buffer_.get()) + seen_bytes);
  DMS_CUDA_RETURN_IF_ERROR(cudaMemset(penalties_buffer_.get(), 0, penalties_buffer_.size()),
                           "penalty state");
  Arena arena;
  const size_t o_params = arena.Plan(max_rows * sizeof(cuda::RowSamplingParams));
  const size_t o_out = arena.Plan(max_rows * sizeof(cuda::SampledRow));
  const size_t o_scratch = arena.Plan(cuda::SampleRowsScratchBytes(max_rows, vocab));
  DMS_RETURN_IF_ERROR(rows_buffer_.Allocate(arena.planned(), "sampled rows"));
  char* base = static_cast<char*>(rows_buffer_.get());
  d_params_ = reinterpret_cast<cuda::RowSamplingParams*>(base + o_params);
  d_out_ = reinterpret_cast<cuda::SampledRow*>(base + o_out);
  d_scratch_ = base + o_scratch;
  DMS_RETURN_IF_ERROR(host_params_.Allocate(max_rows * sizeof(cuda::RowSamplingParams),
                                            "sampling parameters (host)"));
  DMS_RETURN_IF_ERROR(
      host_out_.Allocate(max_rows * sizeof(cuda::SampledRow), "sampled rows (host)"));
  return host_history_.Allocate(static_cast<size_t>(vocab) * 5, "token history (host)");
}

Status DeviceSampler::SetHistory(SeqId seq, std::span<const int32_t> prompt,
                                 std::span<const int32_t> output, cudaStream_t stream) {
  if (seq < 0 || seq >= penalties_.num_slots)
    return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  uint8_t* seen = static_cast<uint8_t*>(host_history_.get());
  int32_t* counts = reinterpret_cast<int32_t*>(seen + vocab_);
  // The staging buffer is reused: the previous upload must be done with it.
  DMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream), "token history");
  std::memset(seen, 0, static_cast<size_t>(vocab_) * 5);
  for (int32_t t : prompt) {
    if (t >= 0 && t < vocab_) seen[t] = 1;
  }
  for (int32_t t : output) {
    if (t < 0 || t >= vocab_) return InvalidArgumentError("output token id outside the vocabulary");
    seen[t] = 1;
    ++counts[t];
  }
  const size_t row = static_cast<size_t>(seq) * vocab_;
  DMS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(penalties_.seen + row, seen, vocab_, cudaMemcpyHostToDevice, stream),
      "token history");
  DMS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(penalties_.counts + row, counts, static_cast<size_t>(vocab_) * 4,
                      cudaMemcpyHostToDevice, stream),
      "token history");
  DMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream), "token history");
  return OkStatus();
}

Status DeviceSampler::Clear(SeqId seq, cudaStream_t stream) {
  if (seq < 0 || seq >= penalties_.num_slots) return OkStatus();
  DMS_CUDA_RETURN_IF_ERROR(cuda::ClearPenaltySlot(penalties_, seq, vocab_, stream), "penalty slot");
  return OkStatus();
}

StatusOr<bool> DeviceSampler::Enqueue(std::span<const SampleRowRequest> rows, const float* logits,
                                      const cuda::LogitRowSummary* summaries, cudaStream_t stream) {
  bool any = false;
  for (const SampleRowRequest& r : rows) any |= r.sampling != nullptr;
  if (!any) return false;
  if (static_cast<int>(rows.size()) > max_rows_)
    return InternalError("more sampled rows than planned");
  auto* params = static_cast<cuda::RowSamplingParams*>(host_params_.get());
  for (size_t i = 0; i < rows.size(); ++i) params[i] = DeviceParams(rows[i]);
  const int n = static_cast<int>(rows.size());
  DMS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(d_params_, params, n * sizeof(*params), cudaMemcpyHostToDevice, stream),
      "sampling parameters");
  DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchSampleRows(logits, n, vocab_, d_params_, summaries,
                                                  penalties_, d_scratch_, d_out_, stream),
                           "sampling");
  DMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_out_.get(), d_out_, n * sizeof(cuda::SampledRow),
                                           cudaMemcpyDeviceToHost, stream),
                           "sampled rows copy");
  return true;
}

void DeviceSampler::Collect(std::span<const SampleRowRequest> rows, SampledToken* out) const {
  const auto* sampled = static_cast<const cuda::SampledRow*>(host_out_.get());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].sampling) continue;
    SampledToken& t = out[i];
    t.id = sampled[i].id;
    t.logprob = sampled[i].logprob;
    t.top.clear();
    const int n = std::min(rows[i].sampling->params.logprobs, cuda::kMaxTopLogprobs);
    for (int k = 0; k < n && sampled[i].top_ids[k] >= 0; ++k) {
      t.top.emplace_back(sampled[i].top_ids[k], sampled[i].top_logprobs[k]);
    }
  }
}

}  // namespace dms

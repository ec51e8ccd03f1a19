#include "engine/core/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace dms {

double CounterUniform(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (counter + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

Sampler::Sampler(const SamplingParams& params, uint64_t seed, int vocab_size)
    : params_(params), seed_(seed), vocab_size_(vocab_size), history_(vocab_size) {}

void TokenHistory::AddPrompt(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    if (t >= 0 && t < static_cast<int32_t>(seen_.size())) seen_[t] = 1;
  }
}

void TokenHistory::AddOutput(int32_t id) {
  seen_[id] = 1;
  ++out_count_[id];
}

void Sampler::AddPromptTokens(std::span<const int32_t> tokens) { history_.AddPrompt(tokens); }

namespace {

// Repetition (HF rule) over seen tokens, then presence and frequency
// (OpenAI rule) over output tokens.
void ApplyPenalties(const SamplingParams& params, const TokenHistory& history,
                    std::vector<float>& logits) {
  const float rep = params.repetition_penalty;
  if (rep != 1.0f) {
    for (size_t i = 0; i < logits.size(); ++i) {
      if (!history.seen(static_cast<int32_t>(i))) continue;
      logits[i] = logits[i] > 0 ? logits[i] / rep : logits[i] * rep;
    }
  }
  if (params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) {
    for (const auto& [id, count] : history.output_counts()) {
      logits[id] -= params.frequency_penalty * count + params.presence_penalty;
    }
  }
}

// Temperature, top-k, top-p and min-p over the penalized row in `work`, then
// the draw: the id whose cumulative mass, in (logit desc, id asc) order, first
// passes uniform * the kept mass.
int32_t DrawFromRow(const SamplingParams& params, double uniform, SampleScratch* scratch) {
  std::vector<float>& work = scratch->work;
  std::vector<int32_t>& order = scratch->order;
  const int v = static_cast<int>(work.size());
  const float inv_t = 1.0f / params.temperature;
  for (float& x : work) x *= inv_t;
  // Candidates sorted by logit (desc), ties by id: top-k cuts this list.
  order.resize(v);
  std::iota(order.begin(), order.end(), 0);
  auto better = [&](int32_t a, int32_t b) {
    return work[a] > work[b] || (work[a] == work[b] && a < b);
  };
  int n = v;
  if (params.top_k > 0 && params.top_k < v) {
    n = params.top_k;
    std::partial_sort(order.begin(), order.begin() + n, order.end(), better);
  } else {
    std::sort(order.begin(), order.end(), better);
  }
  // Softmax over the candidates (first is the max).
  const float top = work[order[0]];
  std::vector<double>& probs = scratch->probs;
  probs.resize(n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += probs[i] = std::exp(static_cast<double>(work[order[i]]) - top);
  for (double& p : probs) p /= sum;
  // top-p: the smallest prefix whose mass reaches top_p.
  if (params.top_p < 1.0f) {
    double cum = 0;
    int keep = n;
    for (int i = 0; i < n; ++i) {
      cum += probs[i];
      if (cum >= params.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  // min-p: relative to the most likely token.
  if (params.min_p > 0.0f) {
    const double floor = params.min_p * probs[0];
    int keep = 1;
    while (keep < n && probs[keep] >= floor) ++keep;
    n = keep;
  }
  double mass = 0;
  for (int i = 0; i < n; ++i) mass += probs[i];
  const double u = uniform * mass;
  double cum = 0;
  for (int i = 0; i < n; ++i) {
    cum += probs[i];
    if (u < cum) return order[i];
  }
  return order[n - 1];
}

// The n most likely tokens of the raw row (ties by id) with their logprobs.
void TopLogprobs(std::span<const float> logits, double lse, int n, std::vector<int32_t>* order,
                 SampledToken* out) {
  const int v = static_cast<int>(logits.size());
  const int k = std::min(n, v);
  order->resize(v);
  std::iota(order->begin(), order->end(), 0);
  std::partial_sort(order->begin(), order->begin() + k, order->end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int i = 0; i < k; ++i) {
    out->top.emplace_back((*order)[i], static_cast<float>(logits[(*order)[i]] - lse));
  }
}

}  // namespace

SampledToken SampleRow(const SamplingParams& params, std::span<const float> logits,
                       const LogitSummary& summary, double uniform, const TokenHistory& history,
                       SampleScratch* scratch) {
  SampledToken out;
  scratch->work.assign(logits.begin(), logits.end());
  ApplyPenalties(params, history, scratch->work);
  if (params.greedy()) {
    out.id = static_cast<int32_t>(std::max_element(scratch->work.begin(), scratch->work.end()) -
                                  scratch->work.begin());
  } else {
    out.id = DrawFromRow(params, uniform, scratch);
  }
  // The model's own log-softmax, for reported logprobs.
  out.logprob = static_cast<float>(logits[out.id] - summary.log_sum_exp);
  if (params.logprobs > 0)
    TopLogprobs(logits, summary.log_sum_exp, params.logprobs, &scratch->order, &out);
  return out;
}

LogitSummary SummarizeLogits(std::span<const float> logits) {
  LogitSummary s;
  if (logits.empty()) return s;
  s.argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  s.max_logit = logits[s.argmax];
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - s.max_logit);
  s.log_sum_exp = std::log(sum) + s.max_logit;
  return s;
}

bool Sampler::NeedsFullLogits() const {
  return !params_.greedy() || params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
         params_.frequency_penalty != 0.0f || params_.logprobs > 0;
}

SampledToken Sampler::SampleFromSummary(const LogitSummary& summary) {
  SampledToken out;
  out.id = summary.argmax;
  out.logprob = static_cast<float>(summary.max_logit - summary.log_sum_exp);
  Record(out.id);
  return out;
}

void Sampler::Record(int32_t id) {
  history_.AddOutput(id);
  ++num_generated_;
}

double Sampler::NextUniform() const { return CounterUniform(seed_, num_generated_); }

SampledToken Sampler::Sample(std::span<const float> logits) {
  return Sample(logits, SummarizeLogits(logits.first(vocab_size_)));
}

SampledToken Sampler::Sample(std::span<const float> logits, const LogitSummary& summary) {
  SampledToken out =
      SampleRow(params_, logits.first(vocab_size_), summary, NextUniform(), history_, &scratch_);
  Record(out.id);
  return out;
}

}  // namespace dms

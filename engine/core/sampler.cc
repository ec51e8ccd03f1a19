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
    : params_(params), seed_(seed), vocab_size_(vocab_size), seen_(vocab_size, 0) {}

void Sampler::AddPromptTokens(std::span<const int32_t> tokens) {
  for (int32_t t : tokens) {
    if (t >= 0 && t < vocab_size_) seen_[t] = 1;
  }
}

void Sampler::ApplyPenalties(std::vector<float>& logits) const {
  const float rep = params_.repetition_penalty;
  if (rep != 1.0f) {
    for (int i = 0; i < vocab_size_; ++i) {
      if (!seen_[i]) continue;
      logits[i] = logits[i] > 0 ? logits[i] / rep : logits[i] * rep;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [id, count] : out_count_) {
      logits[id] -= params_.frequency_penalty * count + params_.presence_penalty;
    }
  }
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
  seen_[id] = 1;
  ++out_count_[id];
  ++num_generated_;
}

SampledToken Sampler::Sample(std::span<const float> logits) {
  return Sample(logits, SummarizeLogits(logits.first(vocab_size_)));
}

SampledToken Sampler::Sample(std::span<const float> logits, const LogitSummary& summary) {
  SampledToken out;
  const int v = vocab_size_;
  // The model's own log-softmax, for reported logprobs.
  const double lse = summary.log_sum_exp;

  work_.assign(logits.begin(), logits.begin() + v);
  ApplyPenalties(work_);

  if (params_.greedy()) {
    out.id = static_cast<int32_t>(std::max_element(work_.begin(), work_.end()) - work_.begin());
  } else {
    const float inv_t = 1.0f / params_.temperature;
    for (float& x : work_) x *= inv_t;
    // Candidates sorted by logit (desc), ties by id: top-k cuts this list.
    order_.resize(v);
    std::iota(order_.begin(), order_.end(), 0);
    auto better = [&](int32_t a, int32_t b) {
      return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
    };
    int n = v;
    if (params_.top_k > 0 && params_.top_k < v) {
      n = params_.top_k;
      std::partial_sort(order_.begin(), order_.begin() + n, order_.end(), better);
    } else {
      std::sort(order_.begin(), order_.end(), better);
    }
    // Softmax over the candidates (first is the max).
    const float top = work_[order_[0]];
    std::vector<double> probs(n);
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += probs[i] = std::exp(static_cast<double>(work_[order_[i]]) - top);
    for (double& p : probs) p /= sum;
    // top-p: the smallest prefix whose mass reaches top_p.
    if (params_.top_p < 1.0f) {
      double cum = 0;
      int keep = n;
      for (int i = 0; i < n; ++i) {
        cum += probs[i];
        if (cum >= params_.top_p) {
          keep = i + 1;
          break;
        }
      }
      n = keep;
    }
    // min-p: relative to the most likely token.
    if (params_.min_p > 0.0f) {
      const double floor = params_.min_p * probs[0];
      int keep = 1;
      while (keep < n && probs[keep] >= floor) ++keep;
      n = keep;
    }
    double mass = 0;
    for (int i = 0; i < n; ++i) mass += probs[i];
    const double u = CounterUniform(seed_, num_generated_) * mass;
    double cum = 0;
    out.id = order_[n - 1];
    for (int i = 0; i < n; ++i) {
      cum += probs[i];
      if (u < cum) {
        out.id = order_[i];
        break;
      }
    }
  }
  out.logprob = static_cast<float>(logits[out.id] - lse);
  if (params_.logprobs > 0) {
    const int k = std::min(params_.logprobs, v);
    order_.resize(v);
    std::iota(order_.begin(), order_.end(), 0);
    std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int i = 0; i < k; ++i) {
      out.top.emplace_back(order_[i], static_cast<float>(logits[order_[i]] - lse));
    }
  }
  Record(out.id);
  return out;
}

}  // namespace dms

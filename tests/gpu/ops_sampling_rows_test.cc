// LaunchSampleRows against dms::Sampler (engine/core/sampler.cc), the CPU
// reference, row for row: the same parameters and seed, prompt tokens marked
// seen on both sides, earlier outputs recorded by sampling (the kernel's own
// recording in the device penalty state against Sampler::Record).
//
// Exactness contract: the GPU picks the CPU's token, except where the CPU's
// own arithmetic puts a decision within kTol (relative) of a boundary: the
// top-p running sum within kTol of top_p, a probability within kTol of the
// min-p floor, or the draw u * mass within kTol * mass of a running sum
// (floating-point sums in another order may land on either side). Every
// mismatch must be such a case AND the GPU's token must be one that the
// CPU's trace reaches by flipping those borderline decisions (TraceSample);
// mismatches are counted and must be rare. Greedy rows, ids of the top-n
// logprobs and every logprob (to 1e-5) are checked exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "engine/core/sampler.h"
#include "kernels/sampling.h"
#include "tests/gpu/gpu_test_util.h"

namespace dms::gpu_testing {
namespace {

constexpr double kTol = 1e-9;

// ---- The CPU's arithmetic with its borderline decisions exposed ----

// Host mirror of one sequence's penalty history (what Sampler keeps).
struct History {
  std::vector<uint8_t> seen;
  std::vector<int> counts;
};

// Sampler::ApplyPenalties on a copy of the row.
std::vector<float> Penalized(const float* logits, int vocab, const SamplingParams& sp,
                             const History& h) {
  std::vector<float> w(logits, logits + vocab);
  for (int i = 0; i < vocab; ++i) {
    if (sp.repetition_penalty != 1.0f && h.seen[i]) {
      w[i] = w[i] > 0 ? w[i] / sp.repetition_penalty : w[i] * sp.repetition_penalty;
    }
  }
  if (sp.presence_penalty != 0.0f || sp.frequency_penalty != 0.0f) {
    for (int i = 0; i < vocab; ++i) {
      if (h.counts[i] > 0) w[i] -= sp.frequency_penalty * h.counts[i] + sp.presence_penalty;
    }
  }
  return w;
}

struct Trace {
  int id = -1;             // the CPU's token
  std::set<int> accepted;  // id and the tokens reached by flipping borderline decisions
  bool borderline = false;
};

// Ids by value descending, ties by lower id (the CPU sampler's order).
std::vector<int> SortedOrder(const std::vector<float>& work) {
  std::vector<int> order(work.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return work[a] > work[b] || (work[a] == work[b] && a < b); });
  return order;
}

// Sampler::Sample's algorithm on penalized values with draw u, enumerating
// the outcomes of decisions that lie within kTol of their boundary. `sorted`:
// SortedOrder of the scaled values when the caller has it (many draws).
Trace TraceSample(std::vector<float> work, const SamplingParams& sp, double u,
                  const std::vector<int>* sorted = nullptr) {
  Trace t;
  const int v = static_cast<int>(work.size());
  if (sp.greedy()) {
    t.id = static_cast<int>(std::max_element(work.begin(), work.end()) - work.begin());
    t.accepted.insert(t.id);
    return t;
  }
  const float inv_t = 1.0f / sp.temperature;
  for (float& x : work) x *= inv_t;
  const std::vector<int> order = sorted ? *sorted : SortedOrder(work);
  const int n = sp.top_k > 0 && sp.top_k < v ? sp.top_k : v;
  const float top = work[order[0]];
  std::vector<double> p(n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += p[i] = std::exp(static_cast<double>(work[order[i]]) - top);
  for (double& x : p) x /= sum;
  // Top-p cuts: the CPU's, and after each borderline running sum.
  std::set<int> cuts_p;
  if (sp.top_p < 1.0f) {
    double cum = 0;
    int keep = n;
    for (int i = 0; i < n; ++i) {
      cum += p[i];
      if (keep == n && cum >= sp.top_p) keep = i + 1;
      if (std::abs(cum - sp.top_p) <= kTol) {
        t.borderline = true;
        for (int c : {i + 1, i + 2}) cuts_p.insert(std::min(c, n));
      }
      if (cum > sp.top_p + 1e-6) break;
    }
    cuts_p.insert(keep);
  } else {
    cuts_p.insert(n);
  }
  const int exact_p = [&] {
    if (sp.top_p >= 1.0f) return n;
    double cum = 0;
    for (int i = 0; i < n; ++i) {
      cum += p[i];
      if (cum >= sp.top_p) return i + 1;
    }
    return n;
  }();
  for (int cut_p : cuts_p) {
    std::set<int> cuts_m;
    int exact_m = cut_p;
    if (sp.min_p > 0.0f) {
      const double floor = sp.min_p * p[0];
      int keep = 1;
      while (keep < cut_p && p[keep] >= floor) ++keep;
      exact_m = keep;
      cuts_m.insert(keep);
      for (int i = 1; i < cut_p; ++i) {
        if (std::abs(p[i] - floor) <= kTol * floor) {
          t.borderline = true;
          cuts_m.insert(i);
          cuts_m.insert(std::min(i + 1, cut_p));
        }
      }
    } else {
      cuts_m.insert(cut_p);
    }
    for (int m : cuts_m) {
      double mass = 0;
      for (int i = 0; i < m; ++i) mass += p[i];
      const double target = u * mass;
      double cum = 0;
      int pick = m - 1;
      for (int i = 0; i < m; ++i) {
        cum += p[i];
        if (std::abs(target - cum) <= kTol * mass) {
          t.borderline = true;
          t.accepted.insert(order[i]);
          t.accepted.insert(order[std::min(i + 1, m - 1)]);
        }
        if (pick == m - 1 && target < cum) pick = i;
      }
      t.accepted.insert(order[pick]);
      if (cut_p == exact_p && m == exact_m) t.id = order[pick];
    }
  }
  return t;
}

// ---- Logits ----

enum class Style { kLlm, kUniform, kQuantized, kEqual, kMasked };
const char* StyleName(Style s) {
  switch (s) {
    case Style::kLlm:
      return "llm";
    case Style::kUniform:
      return "uniform";
    case Style::kQuantized:
      return "quantized";
    case Style::kEqual:
      return "equal";
    case Style::kMasked:
      return "masked";
  }
  return "?";
}

std::vector<float> MakeRow(Style style, int vocab, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_real_distribution<float> uni(-20.0f, 20.0f);
  std::vector<float> x(vocab);
  for (float& v : x) {
    switch (style) {
      case Style::kLlm:
        v = normal(rng);
        break;
      case Style::kUniform:
        v = uni(rng);
        break;
      case Style::kQuantized:
        v = std::round(normal(rng) * 2.0f) / 2.0f;
        break;  // few values
      case Style::kEqual:
        v = 1.5f;
        break;
      case Style::kMasked:
        v = rng() % 10 == 0 ? normal(rng) : -INFINITY;
        break;
    }
  }
  if (style == Style::kMasked) x[rng() % vocab] = 3.0f;  // at least one finite
  if (style == Style::kLlm) {  // a few likely tokens, as a language model's row
    for (int i = 0; i < std::min(vocab, 30); ++i)
      x[rng() % vocab] += 5.0f + 10.0f * (rng() % 1000) / 1000.0f;
  }
  return x;
}

// ---- One sequence per row, on both sides ----

struct Sequence {
  SamplingParams sp;
  uint64_t seed = 0;
  std::vector<int32_t> prompt;
  History history;
  Sampler* cpu = nullptr;
  bool diverged = false;  // a borderline mismatch: the penalty histories differ from here on
};

cuda::RowSamplingParams DeviceParams(const Sequence& s, int slot, double uniform) {
  cuda::RowSamplingParams p;
  p.temperature = s.sp.temperature;
  p.top_k = s.sp.top_k;
  p.top_p = s.sp.top_p;
  p.min_p = s.sp.min_p;
  p.repetition_penalty = s.sp.repetition_penalty;
  p.presence_penalty = s.sp.presence_penalty;
  p.frequency_penalty = s.sp.frequency_penalty;
  p.penalty_slot = slot;
  p.num_logprobs = s.sp.logprobs;
  p.uniform = uniform;
  return p;
}

SamplingParams RandomParams(std::mt19937_64& rng, int vocab) {
  auto pick = [&](auto list) { return list[rng() % list.size()]; };
  SamplingParams sp;
  sp.temperature = pick(std::vector<float>{0.0f, 0.3f, 0.6f, 1.0f, 2.5f});
  sp.top_k = pick(std::vector<int>{0, 1, 5, 20, 50, 1500, vocab, vocab >= 32000 ? 5000 : 0});
  sp.top_p = pick(std::vector<float>{1.0f, 0.95f, 0.5f, 1e-6f});
  sp.min_p = pick(std::vector<float>{0.0f, 0.05f, 0.5f});
  sp.repetition_penalty = pick(std::vector<float>{1.0f, 1.3f, 0.8f});
  sp.presence_penalty = pick(std::vector<float>{0.0f, 0.5f, -0.7f});
  sp.frequency_penalty = pick(std::vector<float>{0.0f, 0.5f, -0.7f});
  if (sp.temperature == 0.0f && sp.repetition_penalty == 1.0f) sp.repetition_penalty = 1.3f;
  sp.logprobs = pick(std::vector<int>{0, 0, 1, 5, 20});
  return sp;
}

// Runs `steps` steps of `seqs` (one row each, one launch a step) on both
// sides and checks them. logits_for(step, row) gives a row's logits.
struct RunStats {
  int rows = 0, exact = 0, borderline = 0;
};

// Logprobs: within 1e-5, or both -inf (a masked token).
bool LogprobClose(float got, double want) {
  return (std::isinf(got) && std::isinf(want) && got < 0 && want < 0) ||
         std::abs(got - want) <= 1e-5;
}

template <typename LogitsFn>
void RunAndCompare(std::vector<Sequence>& seqs, int vocab, int steps, LogitsFn logits_for,
                   const std::string& label, RunStats* stats) {
  const int rows = static_cast<int>(seqs.size());
  RunStats& st = *stats;
  // Device penalty state: poisoned, then every slot cleared and its prompt marked.
  DevArray<uint8_t> seen(static_cast<size_t>(rows) * vocab);
  DevArray<int32_t> counts(static_cast<size_t>(rows) * vocab);
  const cuda::PenaltyState state{seen.get(), counts.get(), rows};
  std::vector<Sampler> cpu;
  cpu.reserve(rows);
  for (int r = 0; r < rows; ++r) {
    Sequence& s = seqs[r];
    cpu.emplace_back(s.sp, s.seed, vocab);
    s.cpu = &cpu.back();
    s.cpu->AddPromptTokens(s.prompt);
    s.history.seen.assign(vocab, 0);
    s.history.counts.assign(vocab, 0);
    for (int32_t t : s.prompt) s.history.seen[t] = 1;
    EXPECT_EQ(cuda::ClearPenaltySlot(state, r, vocab, nullptr), cudaSuccess);
    if (!s.prompt.empty()) {
      DevArray<int32_t> tokens;
      tokens.Upload(s.prompt);
      EXPECT_EQ(cuda::LaunchMarkSeen(state, r, vocab, tokens.get(),
                                     static_cast<int>(s.prompt.size()), nullptr),
                cudaSuccess);
      cudaDeviceSynchronize();
    }
  }
  DevArray<uint8_t> summary_scratch(cuda::LogitSummaryScratchBytes(rows, vocab));
  for (int step = 0; step < steps; ++step) {
    std::vector<float> logits(static_cast<size_t>(rows) * vocab);
    std::vector<cuda::RowSamplingParams> params(rows);
    for (int r = 0; r < rows; ++r) {
      const std::vector<float> row = logits_for(step, r);
      std::copy(row.begin(), row.end(), logits.begin() + static_cast<size_t>(r) * vocab);
      params[r] =
          DeviceParams(seqs[r], r, CounterUniform(seqs[r].seed, seqs[r].cpu->num_generated()));
    }
    DevArray<float> d_logits;
    d_logits.Upload(logits);
    DevArray<cuda::RowSamplingParams> d_params;
    d_params.Upload(params);
    DevArray<cuda::LogitRowSummary> d_summary(rows);
    DevArray<cuda::SampledRow> d_out(rows);  // poisoned
    EXPECT_EQ(cuda::LaunchLogitSummary(d_logits.get(), rows, vocab, summary_scratch.get(),
                                       d_summary.get(), nullptr),
              cudaSuccess);
    EXPECT_EQ(cuda::LaunchSampleRows(d_logits.get(), rows, vocab, d_params.get(), d_summary.get(),
                                     state, nullptr, d_out.get(), nullptr),
              cudaSuccess);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const std::vector<cuda::SampledRow> got = d_out.Download();
    for (int r = 0; r < rows; ++r) {
      Sequence& s = seqs[r];
      if (s.diverged) continue;
      const float* row = logits.data() + static_cast<size_t>(r) * vocab;
      const double uniform = params[r].uniform;
      const std::vector<float> work = Penalized(row, vocab, s.sp, s.history);
      const SampledToken want = s.cpu->Sample(std::span<const float>(row, vocab));
      const cuda::SampledRow& g = got[r];
      const std::string where =
          label + " step " + std::to_string(step) + " row " + std::to_string(r) +
          " T=" + std::to_string(s.sp.temperature) + " k=" + std::to_string(s.sp.top_k) +
          " p=" + std::to_string(s.sp.top_p) + " min_p=" + std::to_string(s.sp.min_p) +
          " rep=" + std::to_string(s.sp.repetition_penalty) +
          " pres=" + std::to_string(s.sp.presence_penalty) +
          " freq=" + std::to_string(s.sp.frequency_penalty) + " u=" + std::to_string(uniform);
      ++st.rows;
      ASSERT_TRUE(g.id >= 0 && g.id < vocab) << where << ": id " << g.id;
      if (g.id == want.id) {
        ++st.exact;
      } else {
        const Trace t = TraceSample(work, s.sp, uniform);
        ASSERT_EQ(t.id, want.id) << where << ": the test's trace disagrees with Sampler";
        ASSERT_TRUE(!s.sp.greedy() && t.borderline && t.accepted.count(g.id))
            << where << ": GPU " << g.id << " CPU " << want.id << ", not a borderline case";
        ++st.borderline;
        s.diverged = true;
      }
      // logprob of the GPU's token under the raw row (the CPU's formula).
      const LogitSummary sum = SummarizeLogits(std::span<const float>(row, vocab));
      EXPECT_TRUE(LogprobClose(g.logprob, static_cast<float>(row[g.id] - sum.log_sum_exp)))
          << where << ": logprob " << g.logprob;
      const int n_top = std::min(s.sp.logprobs, vocab);
      ASSERT_EQ(want.top.size(), static_cast<size_t>(n_top)) << where;
      for (int j = 0; j < cuda::kMaxTopLogprobs; ++j) {
        if (j < n_top) {
          EXPECT_EQ(g.top_ids[j], want.top[j].first) << where << " top " << j;
          EXPECT_TRUE(LogprobClose(g.top_logprobs[j], want.top[j].second))
              << where << " top " << j << ": " << g.top_logprobs[j] << " vs " << want.top[j].second;
        } else {
          EXPECT_EQ(g.top_ids[j], -1) << where << " top " << j;
        }
      }
      if (!s.diverged) {  // Sampler::Record, mirrored for the next step's trace
        s.history.seen[want.id] = 1;
        ++s.history.counts[want.id];
      }
    }
  }
}

std::vector<int32_t> RandomPrompt(std::mt19937_64& rng, int vocab) {
  std::vector<int32_t> p(rng() % 40);
  for (int32_t& t : p) t = static_cast<int32_t>(rng() % vocab);
  return p;
}

void ReportStats(const std::string& label, const RunStats& st) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "rows=%d exact=%d borderline=%d", st.rows, st.exact,
                st.borderline);
  const bool ok = st.borderline * 50 <= st.rows + 50;  // rare: about 2% at most (plus slack)
  Report("sample_rows", label, buf, ok);
  EXPECT_TRUE(ok) << label << ": too many borderline mismatches (" << buf << ")";
}

// Every sweep parameter, every logit style, rows of mixed parameters in one
// launch, 3 steps (penalties from the prompt, then from outputs too).
TEST(SampleRowsOp, SweepMatchesTheCpuSampler) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(11);
  for (int vocab : {1, 2, 7, 256, 1000, 32000, 151936}) {
    const bool big = vocab > 100000;
    for (Style style :
         {Style::kLlm, Style::kUniform, Style::kQuantized, Style::kEqual, Style::kMasked}) {
      if (big && (style == Style::kUniform || style == Style::kMasked)) continue;  // host time
      std::vector<Sequence> seqs(big ? 12 : 40);
      for (Sequence& s : seqs) {
        s.sp = RandomParams(rng, vocab);
        s.seed = rng();
        s.prompt = RandomPrompt(rng, vocab);
      }
      std::vector<std::vector<float>> rows;
      for (size_t r = 0; r < seqs.size() * 3; ++r) rows.push_back(MakeRow(style, vocab, rng));
      const std::string label = std::string(StyleName(style)) + " vocab=" + std::to_string(vocab);
      RunStats st;
      RunAndCompare(
          seqs, vocab, 3, [&](int step, int r) { return rows[step * seqs.size() + r]; }, label,
          &st);
      if (HasFatalFailure()) return;
      ReportStats(label, st);
    }
  }
}

// Every parameter on its own (the others off) on LLM-like rows, including
// top-k above the kernel's shared-memory list (the long path with a cut).
TEST(SampleRowsOp, EachParameterAlone) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(12);
  for (int vocab : {1000, 32000, 151936}) {
    std::vector<Sequence> seqs;
    auto add = [&](auto set) {
      for (int rep = 0; rep < 2; ++rep) {
        Sequence s;
        s.sp.temperature = 1.0f;
        set(s.sp);
        s.seed = rng();
        s.prompt = RandomPrompt(rng, vocab);
        seqs.push_back(s);
      }
    };
    for (float t : {0.3f, 0.6f, 1.0f, 2.5f}) add([&](SamplingParams& sp) { sp.temperature = t; });
    for (int k : {1, 5, 20, 50, 1500, 2048, 2049, 5000, vocab})
      add([&](SamplingParams& sp) { sp.top_k = k; });
    for (float p : {0.95f, 0.5f, 1e-6f}) add([&](SamplingParams& sp) { sp.top_p = p; });
    for (float m : {0.05f, 0.5f, 1.0f}) add([&](SamplingParams& sp) { sp.min_p = m; });
    for (float r : {1.3f, 0.8f}) add([&](SamplingParams& sp) { sp.repetition_penalty = r; });
    for (float f : {0.5f, -0.7f}) {
      add([&](SamplingParams& sp) { sp.presence_penalty = f; });
      add([&](SamplingParams& sp) { sp.frequency_penalty = f; });
    }
    add([&](SamplingParams& sp) { sp.temperature = 0.0f, sp.presence_penalty = 1.5f; });
    add([&](SamplingParams& sp) { sp.temperature = 0.6f, sp.top_p = 0.95f, sp.top_k = 20; });
    add([&](SamplingParams& sp) { sp.top_k = 5000, sp.top_p = 0.9f, sp.min_p = 0.05f; });
    std::vector<std::vector<float>> rows;
    for (size_t r = 0; r < seqs.size() * 2; ++r) rows.push_back(MakeRow(Style::kLlm, vocab, rng));
    const std::string label = "alone vocab=" + std::to_string(vocab);
    RunStats st;
    RunAndCompare(
        seqs, vocab, 2, [&](int step, int r) { return rows[step * seqs.size() + r]; }, label, &st);
    if (HasFatalFailure()) return;
    ReportStats(label, st);
  }
}

// Penalties accumulating on the device over many steps: the same row every
// step, so that outputs repeat and their counts steer later steps (greedy
// with presence penalty walks down the ranking one token a step).
TEST(SampleRowsOp, PenaltiesAccumulateOnTheDevice) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(13);
  for (int vocab : {256, 32000}) {
    std::vector<Sequence> seqs(8);
    for (size_t r = 0; r < seqs.size(); ++r) {
      SamplingParams& sp = seqs[r].sp;
      sp.temperature = r < 3 ? 0.0f : 0.7f;
      sp.presence_penalty = r % 2 ? 1.5f : 0.0f;
      sp.frequency_penalty = r % 3 == 1 ? 0.8f : r % 3 == 2 ? -0.3f : 0.0f;
      sp.repetition_penalty = r % 4 == 0 ? 1.3f : 1.0f;
      if (sp.presence_penalty == 0 && sp.frequency_penalty == 0 && sp.repetition_penalty == 1)
        sp.presence_penalty = 0.4f;
      sp.top_k = r == 5 ? 0 : 8;
      sp.logprobs = 3;
      seqs[r].seed = rng();
      seqs[r].prompt = RandomPrompt(rng, vocab);
    }
    std::vector<std::vector<float>> rows;
    for (size_t r = 0; r < seqs.size(); ++r) rows.push_back(MakeRow(Style::kLlm, vocab, rng));
    const std::string label = "penalties vocab=" + std::to_string(vocab) + " steps=16";
    RunStats st;
    RunAndCompare(
        seqs, vocab, 16, [&](int, int r) { return rows[r]; }, label, &st);
    if (HasFatalFailure()) return;
    ReportStats(label, st);
  }
}

// Draws at the edges (u = 0, tiny, just below 1) and many random draws on
// one row, against TraceSample (the test's copy of the CPU's arithmetic,
// itself checked against Sampler above and here for the first draw).
TEST(SampleRowsOp, DrawsAtTheEdges) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(14);
  for (int vocab : {1000, 151936}) {
    for (Style style : {Style::kLlm, Style::kEqual, Style::kQuantized}) {
      const std::vector<float> row = MakeRow(style, vocab, rng);
      const std::vector<int> order = SortedOrder(row);  // temperature 1: the row's own order
      std::vector<double> draws = {0.0, 1e-300, 1e-12, 0.5, 1.0 - 1e-12, 1.0 - 0x1p-53};
      while (draws.size() < 64) draws.push_back(std::uniform_real_distribution<double>(0, 1)(rng));
      for (const auto& [k, top_p, min_p] :
           std::vector<std::tuple<int, float, float>>{{0, 1.0f, 0.0f},
                                                      {20, 1.0f, 0.0f},
                                                      {0, 0.95f, 0.0f},
                                                      {0, 1.0f, 0.05f},
                                                      {5000, 0.9f, 0.0f}}) {
        SamplingParams sp;
        sp.temperature = 1.0f, sp.top_k = k, sp.top_p = top_p, sp.min_p = min_p;
        const int rows = static_cast<int>(draws.size());
        std::vector<float> logits;
        std::vector<cuda::RowSamplingParams> params;
        Sequence s;
        s.sp = sp;
        for (int r = 0; r < rows; ++r) {
          logits.insert(logits.end(), row.begin(), row.end());
          params.push_back(DeviceParams(s, -1, draws[r]));
        }
        DevArray<float> d_logits;
        d_logits.Upload(logits);
        DevArray<cuda::RowSamplingParams> d_params;
        d_params.Upload(params);
        DevArray<cuda::LogitRowSummary> d_summary(rows);
        DevArray<uint8_t> scratch(cuda::LogitSummaryScratchBytes(rows, vocab));
        DevArray<cuda::SampledRow> d_out(rows);
        DMS_CUDA_CHECK(cuda::LaunchLogitSummary(d_logits.get(), rows, vocab, scratch.get(),
                                                d_summary.get(), nullptr));
        DMS_CUDA_CHECK(cuda::LaunchSampleRows(d_logits.get(), rows, vocab, d_params.get(),
                                              d_summary.get(), cuda::PenaltyState{}, nullptr,
                                              d_out.get(), nullptr));
        const std::vector<cuda::SampledRow> got = d_out.Download();
        int exact = 0, borderline = 0;
        for (int r = 0; r < rows; ++r) {
          const Trace t = TraceSample(row, sp, draws[r], &order);
          if (r == 0) {  // the trace is the CPU sampler
            Sampler cpu(sp, 5, vocab);
            const double u0 = CounterUniform(5, 0);
            EXPECT_EQ(TraceSample(row, sp, u0).id, cpu.Sample(row).id);
          }
          const std::string where = std::string(StyleName(style)) + " vocab " +
                                    std::to_string(vocab) + " k " + std::to_string(k) + " top_p " +
                                    std::to_string(top_p) + " min_p " + std::to_string(min_p) +
                                    " u " + std::to_string(draws[r]);
          if (got[r].id == t.id) {
            ++exact;
          } else {
            EXPECT_TRUE(t.borderline && t.accepted.count(got[r].id))
                << where << ": GPU " << got[r].id << " CPU " << t.id << ", not a borderline case";
            ++borderline;
          }
        }
        char buf[96];
        std::snprintf(buf, sizeof(buf), "draws=%d exact=%d borderline=%d", rows, exact, borderline);
        Report("sample_rows",
               std::string("edges ") + StyleName(style) + " vocab=" + std::to_string(vocab) +
                   " k=" + std::to_string(k) + " p=" + std::to_string(top_p) +
                   " min_p=" + std::to_string(min_p),
               buf, borderline * 8 <= rows);
        EXPECT_LE(borderline * 8, rows);
      }
    }
  }
}

// The penalty-state launchers alone: clear zeroes both arrays of the slot
// only, marking sets exactly the in-range prompt ids.
TEST(SampleRowsOp, PenaltyStateLaunchers) {
  DMS_SKIP_WITHOUT_GPU();
  const int vocab = 1001, slots = 3;
  DevArray<uint8_t> seen(static_cast<size_t>(slots) * vocab);  // poisoned: 0xff
  DevArray<int32_t> counts(static_cast<size_t>(slots) * vocab);
  const cuda::PenaltyState state{seen.get(), counts.get(), slots};
  EXPECT_EQ(cuda::PenaltyStateBytes(slots, vocab), static_cast<size_t>(slots) * vocab * 5);
  DMS_CUDA_CHECK(cuda::ClearPenaltySlot(state, 1, vocab, nullptr));
  DevArray<int32_t> tokens;
  tokens.Upload({5, 1000, -1, 1001, 5, 0});
  DMS_CUDA_CHECK(cuda::LaunchMarkSeen(state, 1, vocab, tokens.get(), 6, nullptr));
  EXPECT_EQ(cuda::ClearPenaltySlot(state, 3, vocab, nullptr), cudaErrorInvalidValue);
  const std::vector<uint8_t> s = seen.Download();
  const std::vector<int32_t> c = counts.Download();
  bool ok = true;
  for (int slot = 0; slot < slots; ++slot) {
    for (int i = 0; i < vocab; ++i) {
      const size_t at = static_cast<size_t>(slot) * vocab + i;
      const uint8_t want_seen = slot != 1 ? 0xff : (i == 0 || i == 5 || i == 1000) ? 1 : 0;
      const int32_t want_count = slot != 1 ? -1 : 0;
      ok &= s[at] == want_seen && c[at] == want_count;
    }
  }
  EXPECT_TRUE(ok);
  Report("penalty_state", "slots=3 vocab=1001", "clear + mark seen", ok);
}

}  // namespace
}  // namespace dms::gpu_testing

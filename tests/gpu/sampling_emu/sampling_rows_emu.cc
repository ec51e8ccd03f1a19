// The row sampler kernel under the CPU block emulator (block_emu.h) against
// dms::Sampler, with ops_sampling_rows_test.cc's checks (its helpers are
// included from a copy that build.sh extracts). A tool for changing the
// kernel where no GPU is at hand; the GPU suite is the test of record.
//
//   sampling_rows_emu MAX_VOCAB ROWS SEED         the sweep (3 steps a row)
//   sampling_rows_emu VOCAB 0 SEED alone          each parameter alone, 16-step
//                                                 penalties, draws at the edges

// The emulator must come before any kernel header.
// clang-format off
#include "tests/gpu/sampling_emu/block_emu.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <string>
#include <tuple>

#include "engine/core/sampler.h"
#include "kernels/sampling.h"
#include "kernels/sampling_select.cuh"
#include "rows_body.inc"  // the kernel, extracted by build.sh
// clang-format on

namespace dms::gpu_testing {
namespace {
#include "helpers.inc"  // the GPU test's helpers, extracted by build.sh

int g_fail = 0;

void EmuLaunch(const std::vector<float>& logits, int rows, int vocab,
               const std::vector<cuda::RowSamplingParams>& params, const cuda::PenaltyState& pen,
               std::vector<cuda::SampledRow>* out) {
  std::vector<cuda::LogitRowSummary> sums(rows);
  for (int r = 0; r < rows; ++r) {
    const LogitSummary s = SummarizeLogits(
        std::span<const float>(logits.data() + static_cast<size_t>(r) * vocab, vocab));
    sums[r] = cuda::LogitRowSummary{s.argmax, s.max_logit, s.log_sum_exp};
  }
  out->assign(rows, cuda::SampledRow{});
  std::memset(out->data(), 0xff, rows * sizeof(cuda::SampledRow));
  for (int r = 0; r < rows; ++r) {
    emu::RunBlock(r, [&] {
      cuda::SampleRowsKernel(logits.data(), vocab, params.data(), sums.data(), pen, out->data());
    });
  }
}

bool LogprobClose(float got, double want) {
  return (std::isinf(got) && std::isinf(want) && got < 0 && want < 0) ||
         std::abs(got - want) <= 1e-5;
}

void Run(std::vector<Sequence>& seqs, int vocab, int steps, std::mt19937_64& rng, Style style,
         bool same_row) {
  const int rows = static_cast<int>(seqs.size());
  std::vector<uint8_t> seen(static_cast<size_t>(rows) * vocab, 0);
  std::vector<int32_t> counts(static_cast<size_t>(rows) * vocab, 0);
  const cuda::PenaltyState pen{seen.data(), counts.data(), rows};
  std::vector<Sampler> cpu;
  cpu.reserve(rows);
  for (int r = 0; r < rows; ++r) {
    Sequence& s = seqs[r];
    cpu.emplace_back(s.sp, s.seed, vocab);
    s.cpu = &cpu.back();
    s.cpu->AddPromptTokens(s.prompt);
    s.history.seen.assign(vocab, 0);
    s.history.counts.assign(vocab, 0);
    for (int32_t t : s.prompt) s.history.seen[t] = 1, seen[static_cast<size_t>(r) * vocab + t] = 1;
  }
  std::vector<std::vector<float>> fixed;
  for (int r = 0; r < rows; ++r) fixed.push_back(MakeRow(style, vocab, rng));
  int exact = 0, border = 0, total = 0;
  for (int step = 0; step < steps; ++step) {
    std::vector<float> logits;
    std::vector<cuda::RowSamplingParams> params(rows);
    for (int r = 0; r < rows; ++r) {
      const std::vector<float> row = same_row ? fixed[r] : MakeRow(style, vocab, rng);
      logits.insert(logits.end(), row.begin(), row.end());
      params[r] =
          DeviceParams(seqs[r], r, CounterUniform(seqs[r].seed, seqs[r].cpu->num_generated()));
    }
    std::vector<cuda::SampledRow> got;
    EmuLaunch(logits, rows, vocab, params, pen, &got);
    for (int r = 0; r < rows; ++r) {
      Sequence& s = seqs[r];
      if (s.diverged) continue;
      const float* row = logits.data() + static_cast<size_t>(r) * vocab;
      const std::vector<float> work = Penalized(row, vocab, s.sp, s.history);
      const SampledToken want = s.cpu->Sample(std::span<const float>(row, vocab));
      const cuda::SampledRow& g = got[r];
      char where[256];
      std::snprintf(
          where, sizeof(where),
          "%s v=%d step %d row %d T=%g k=%d p=%g minp=%g rep=%g pres=%g freq=%g lp=%d u=%.17g",
          StyleName(style), vocab, step, r, s.sp.temperature, s.sp.top_k, s.sp.top_p, s.sp.min_p,
          s.sp.repetition_penalty, s.sp.presence_penalty, s.sp.frequency_penalty, s.sp.logprobs,
          params[r].uniform);
      ++total;
      if (g.id == want.id) {
        ++exact;
      } else {
        const Trace t = TraceSample(work, s.sp, params[r].uniform);
        if (t.id != want.id) {
          std::printf("TRACE DISAGREES %s: trace %d cpu %d\n", where, t.id, want.id);
          ++g_fail;
        }
        if (!(!s.sp.greedy() && t.borderline && t.accepted.count(g.id))) {
          std::printf("MISMATCH %s: gpu %d cpu %d borderline %d\n", where, g.id, want.id,
                      t.borderline);
          ++g_fail;
        } else {
          ++border;
        }
        s.diverged = true;
      }
      if (g.id >= 0 && g.id < vocab) {
        const LogitSummary sum = SummarizeLogits(std::span<const float>(row, vocab));
        if (!LogprobClose(g.logprob, static_cast<float>(row[g.id] - sum.log_sum_exp))) {
          std::printf("LOGPROB %s: %g\n", where, g.logprob);
          ++g_fail;
        }
      }
      const int n_top = std::min(s.sp.logprobs, vocab);
      for (int j = 0; j < cuda::kMaxTopLogprobs; ++j) {
        const bool ok = j < n_top ? g.top_ids[j] == want.top[j].first &&
                                        LogprobClose(g.top_logprobs[j], want.top[j].second)
                                  : g.top_ids[j] == -1;
        if (!ok) {
          std::printf("TOP %s j=%d got %d %g\n", where, j, g.top_ids[j], g.top_logprobs[j]);
          ++g_fail;
          break;
        }
      }
      if (!s.diverged) {
        s.history.seen[want.id] = 1;
        ++s.history.counts[want.id];
        // the device state must equal the host mirror
        for (int i = 0; i < vocab; ++i) {
          if (seen[static_cast<size_t>(r) * vocab + i] != s.history.seen[i] ||
              counts[static_cast<size_t>(r) * vocab + i] != s.history.counts[i]) {
            std::printf("PENALTY STATE %s at %d\n", where, i);
            ++g_fail;
            break;
          }
        }
      }
    }
  }
  std::printf("%-10s vocab=%-7d rows=%d steps=%d: %d rows, %d exact, %d borderline\n",
              StyleName(style), vocab, rows, steps, total, exact, border);
  std::fflush(stdout);
}

}  // namespace
}  // namespace dms::gpu_testing

namespace dms::gpu_testing {
namespace {
void Alone(int vocab, std::mt19937_64& rng) {
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
  for (Style st : {Style::kLlm, Style::kQuantized, Style::kEqual}) {
    std::vector<Sequence> copy = seqs;
    Run(copy, vocab, 2, rng, st, false);
  }
  std::vector<Sequence> pen(8);  // many steps on one row: penalties accumulate
  for (size_t r = 0; r < pen.size(); ++r) {
    SamplingParams& sp = pen[r].sp;
    sp.temperature = r < 3 ? 0.0f : 0.7f;
    sp.presence_penalty = r % 2 ? 1.5f : 0.0f;
    sp.frequency_penalty = r % 3 == 1 ? 0.8f : r % 3 == 2 ? -0.3f : 0.0f;
    sp.repetition_penalty = r % 4 == 0 ? 1.3f : 1.0f;
    if (sp.presence_penalty == 0 && sp.frequency_penalty == 0 && sp.repetition_penalty == 1)
      sp.presence_penalty = 0.4f;
    sp.top_k = r == 5 ? 0 : 8;
    sp.logprobs = 3;
    pen[r].seed = rng();
    pen[r].prompt = RandomPrompt(rng, vocab);
  }
  Run(pen, vocab, 16, rng, Style::kLlm, true);
}

void Edges(int vocab, std::mt19937_64& rng) {
  for (Style style : {Style::kLlm, Style::kEqual, Style::kQuantized}) {
    const std::vector<float> row = MakeRow(style, vocab, rng);
    const std::vector<int> order = SortedOrder(row);
    std::vector<double> draws = {0.0, 1e-300, 1e-12, 0.5, 1.0 - 1e-12, 1.0 - 0x1p-53};
    while (draws.size() < 24) draws.push_back(std::uniform_real_distribution<double>(0, 1)(rng));
    for (const auto& [k, top_p, min_p] :
         std::vector<std::tuple<int, float, float>>{{0, 1.0f, 0.0f},
                                                    {20, 1.0f, 0.0f},
                                                    {0, 0.95f, 0.0f},
                                                    {0, 1.0f, 0.05f},
                                                    {5000, 0.9f, 0.0f}}) {
      SamplingParams sp;
      sp.temperature = 1.0f, sp.top_k = k, sp.top_p = top_p, sp.min_p = min_p;
      Sequence s;
      s.sp = sp;
      const int rows = static_cast<int>(draws.size());
      std::vector<float> logits;
      std::vector<cuda::RowSamplingParams> params;
      for (int r = 0; r < rows; ++r) {
        logits.insert(logits.end(), row.begin(), row.end());
        params.push_back(DeviceParams(s, -1, draws[r]));
      }
      std::vector<cuda::SampledRow> got;
      EmuLaunch(logits, rows, vocab, params, cuda::PenaltyState{}, &got);
      int exact = 0, border = 0;
      for (int r = 0; r < rows; ++r) {
        const Trace t = TraceSample(row, sp, draws[r], &order);
        if (got[r].id == t.id) {
          ++exact;
          continue;
        }
        if (t.borderline && t.accepted.count(got[r].id)) {
          ++border;
          continue;
        }
        std::printf("EDGE MISMATCH %s v=%d k=%d p=%g minp=%g u=%.17g: gpu %d cpu %d\n",
                    StyleName(style), vocab, k, top_p, min_p, draws[r], got[r].id, t.id);
        ++g_fail;
      }
      std::printf("edges %-9s v=%d k=%d p=%g minp=%g: %d exact %d borderline\n", StyleName(style),
                  vocab, k, top_p, min_p, exact, border);
      std::fflush(stdout);
    }
  }
}
}  // namespace
}  // namespace dms::gpu_testing

int main(int argc, char** argv) {
  using namespace dms::gpu_testing;
  if (argc > 4) {
    std::mt19937_64 rng(std::atoi(argv[3]));
    Alone(std::atoi(argv[1]), rng);
    Edges(std::atoi(argv[1]), rng);
    std::printf("failures: %d\n", g_fail);
    return g_fail ? 1 : 0;
  }
  const int max_vocab = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int nrows = argc > 2 ? std::atoi(argv[2]) : 24;
  const int seed = argc > 3 ? std::atoi(argv[3]) : 1;
  std::mt19937_64 rng(seed);
  for (int vocab : {1, 2, 7, 256, 1000, 5000, 32000, 151936}) {
    if (vocab > max_vocab) break;
    for (Style style :
         {Style::kLlm, Style::kUniform, Style::kQuantized, Style::kEqual, Style::kMasked}) {
      std::vector<Sequence> seqs(nrows);
      for (Sequence& s : seqs) {
        s.sp = RandomParams(rng, vocab);
        s.seed = rng();
        s.prompt = RandomPrompt(rng, vocab);
      }
      Run(seqs, vocab, 3, rng, style, false);
    }
  }
  std::printf("failures: %d\n", g_fail);
  return g_fail ? 1 : 0;
}

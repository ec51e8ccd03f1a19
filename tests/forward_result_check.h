// Checks one step's ForwardResult where some chunks asked for summaries
// only (full_logits = false) against the same step on an identical backend
// with every row in full. Shared by the CPU and the CUDA backend tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <vector>

#include "engine/core/backend.h"
#include "engine/core/sampler.h"

namespace dms::testing {

// `full`: the step with every chunk's rows in full; `mixed`: the step on
// `batch`. Rows of chunks with full_logits must equal the full run's bit for
// bit; every summary must equal SummarizeLogits of the full row: argmax and
// maximum exactly, log-sum-exp exactly when lse_rel_tol is 0, else within it
// (relative, floor 1). Returns whether all held (gtest failures say where).
inline bool ExpectSummariesMatchFullRows(std::span<const ForwardChunk> batch, int vocab,
                                         const ForwardResult& full, const ForwardResult& mixed,
                                         double lse_rel_tol) {
  EXPECT_EQ(mixed.summaries.size(), full.summaries.size());
  if (mixed.summaries.size() != full.summaries.size()) return false;
  bool ok = true;
  std::vector<float> want_rows;
  size_t row = 0;
  for (const ForwardChunk& c : batch) {
    for (int k = 0; k < c.num_logits; ++k, ++row) {
      std::span<const float> r(full.logits.data() + row * vocab, vocab);
      const LogitSummary want = SummarizeLogits(r);
      const LogitSummary& got = mixed.summaries[row];
      const double rel =
          std::abs(got.log_sum_exp - want.log_sum_exp) / std::max(1.0, std::abs(want.log_sum_exp));
      EXPECT_EQ(got.argmax, want.argmax) << "row " << row;
      EXPECT_EQ(got.max_logit, want.max_logit) << "row " << row;
      if (lse_rel_tol == 0) {
        EXPECT_EQ(got.log_sum_exp, want.log_sum_exp) << "row " << row;
      } else {
        EXPECT_LT(rel, lse_rel_tol) << "row " << row;
      }
      ok &= got.argmax == want.argmax && got.max_logit == want.max_logit &&
            (lse_rel_tol == 0 ? got.log_sum_exp == want.log_sum_exp : rel < lse_rel_tol);
      if (c.full_logits) want_rows.insert(want_rows.end(), r.begin(), r.end());
    }
  }
  EXPECT_EQ(mixed.logits, want_rows);
  return ok && mixed.logits == want_rows;
}

}  // namespace dms::testing

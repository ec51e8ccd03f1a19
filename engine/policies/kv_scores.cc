#include "engine/policies/kv_scores.h"

#include <algorithm>
#include <cmath>

namespace dms {
namespace {

double Dot(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// y = R x for the (averaged) rotate-half rotation with per-frequency cos c
// and sin s: y_i = c_i x_i - s_i x_{i+h}, y_{i+h} = s_i x_i + c_i x_{i+h}.
// x and y have stride `stride` between elements (to rotate matrix columns).
void Rotate(const std::vector<double>& c, const std::vector<double>& s, const double* x,
            double* y, int stride) {
  const int h = static_cast<int>(c.size());
  for (int i = 0; i < h; ++i) {
    const double a = x[i * stride], b = x[(i + h) * stride];
    y[i * stride] = c[i] * a - s[i] * b;
    y[(i + h) * stride] = s[i] * a + c[i] * b;
  }
}

// In-place softmax of v (max subtracted); entries flagged in `skip` stay out.
void Softmax(std::vector<double>& v, const std::vector<uint8_t>& skip) {
  double mx = -INFINITY;
  for (size_t j = 0; j < v.size(); ++j) {
    if (!skip[j]) mx = std::max(mx, v[j]);
  }
  double sum = 0;
  for (size_t j = 0; j < v.size(); ++j) {
    v[j] = skip[j] ? 0.0 : std::exp(v[j] - mx);
    sum += v[j];
  }
  if (sum > 0) {
    for (double& x : v) x /= sum;
  }
}

}  // namespace

std::vector<double> KnormScores(std::span<const float> keys, int head_dim) {
  const size_t n = head_dim > 0 ? keys.size() / head_dim : 0;
  std::vector<double> out(n);
  for (size_t j = 0; j < n; ++j) {
    const float* k = keys.data() + j * head_dim;
    out[j] = -std::sqrt(Dot(k, k, head_dim));
  }
  return out;
}

std::vector<double> StreamingScores(std::span<const int32_t> positions) {
  return std::vector<double>(positions.begin(), positions.end());
}

std::vector<double> SnapKvScores(const SnapKvInputs& in) {
  const int hd = in.head_dim, g = in.group;
  const int n = static_cast<int>(in.positions.size());
  const int m = static_cast<int>(in.query_positions.size());
  std::vector<double> out(n, 0.0);
  // The earlier keys, in position order: the ones the window scores.
  const int32_t cut = in.num_tokens - in.window;
  std::vector<int> earlier;
  for (int j = 0; j < n; ++j) {
    if (in.positions[j] < cut) earlier.push_back(j);
  }
  const int ne = static_cast<int>(earlier.size());
  if (ne == 0 || m == 0 || g <= 0) return out;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const int half = in.pool_kernel / 2;
  std::vector<double> logits(n), mean(ne);
  std::vector<uint8_t> masked(n);
  for (int qh = 0; qh < g; ++qh) {
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int i = 0; i < m; ++i) {
      const float* q = in.queries.data() + (static_cast<size_t>(i) * g + qh) * hd;
      for (int j = 0; j < n; ++j) {
        masked[j] = in.positions[j] > in.query_positions[i];  // causal
        logits[j] = masked[j] ? 0.0 : Dot(q, in.keys.data() + static_cast<size_t>(j) * hd, hd) * scale;
      }
      Softmax(logits, masked);
      for (int e = 0; e < ne; ++e) mean[e] += logits[earlier[e]];
    }
    for (double& x : mean) x /= m;
    // Average pool of width pool_kernel, zeros beyond both ends, divided by the width.
    for (int e = 0; e < ne; ++e) {
      double s = 0;
      for (int d = -half; d <= half; ++d) {
        if (e + d >= 0 && e + d < ne) s += mean[e + d];
      }
      out[earlier[e]] += s / in.pool_kernel / g;
    }
  }
  return out;
}

void AverageRope(std::span<const double> inv_freq, int64_t first, int count,
                 std::vector<double>* cos_mean, std::vector<double>* sin_mean) {
  const size_t h = inv_freq.size();
  cos_mean->assign(h, 0.0);
  sin_mean->assign(h, 0.0);
  if (count <= 0) return;
  for (size_t i = 0; i < h; ++i) {
    double c = 0, s = 0;
    for (int p = 0; p < count; ++p) {
      const double angle = static_cast<double>(first + p) * inv_freq[i];
      c += std::cos(angle);
      s += std::sin(angle);
    }
    (*cos_mean)[i] = c / count;
    (*sin_mean)[i] = s / count;
  }
}

std::vector<double> ExpectedAttentionScores(const ExpectedAttentionInputs& in) {
  const int hd = in.head_dim, g = in.group;
  const int n = static_cast<int>(in.positions.size());
  std::vector<double> out(n, 0.0);
  std::vector<uint8_t> sink(n);
  bool any = false;
  for (int j = 0; j < n; ++j) {
    sink[j] = in.positions[j] < in.sinks;
    any = any || !sink[j];
  }
  if (!any || in.query_count <= 0 || g <= 0) return out;

  std::vector<double> c, s;
  AverageRope(in.inv_freq, in.num_tokens, in.future_positions, &c, &s);
  const double count = static_cast<double>(in.query_count);
  std::vector<double> mu(hd), mu_r(hd), cov(static_cast<size_t>(hd) * hd), tmp(cov.size()),
      cov_r(cov.size()), z(n), kc(hd);
  for (int qh = 0; qh < g; ++qh) {
    const double* sum = in.query_sum.data() + static_cast<size_t>(qh) * hd;
    const double* outer = in.query_outer.data() + static_cast<size_t>(qh) * hd * hd;
    for (int a = 0; a < hd; ++a) mu[a] = sum[a] / count;
    // Population covariance E[q q^T] - mu mu^T.
    for (int a = 0; a < hd; ++a)
      for (int b = 0; b < hd; ++b) cov[a * hd + b] = outer[a * hd + b] / count - mu[a] * mu[b];
    Rotate(c, s, mu.data(), mu_r.data(), 1);
    // R S: rotate every column; then (R S) R^T: rotate every row.
    for (int b = 0; b < hd; ++b) Rotate(c, s, cov.data() + b, tmp.data() + b, hd);
    for (int a = 0; a < hd; ++a) Rotate(c, s, tmp.data() + a * hd, cov_r.data() + a * hd, 1);

    for (int j = 0; j < n; ++j) {
      if (sink[j]) continue;
      const float* k = in.keys.data() + static_cast<size_t>(j) * hd;
      double mean_term = 0, var_term = 0;
      for (int a = 0; a < hd; ++a) {
        mean_term += mu_r[a] * k[a];
        double row = 0;
        for (int b = 0; b < hd; ++b) row += cov_r[a * hd + b] * k[b];
        var_term += k[a] * row;
      }
      z[j] = mean_term / std::sqrt(static_cast<double>(hd)) + var_term / hd / 2.0;
    }
    Softmax(z, sink);
    for (int j = 0; j < n; ++j) out[j] += z[j] / g;
  }
  for (int j = 0; j < n; ++j) {
    if (sink[j]) continue;
    const float* v = in.values.data() + static_cast<size_t>(j) * hd;
    out[j] *= std::sqrt(Dot(v, v, hd));
  }
  return out;
}

}  // namespace dms

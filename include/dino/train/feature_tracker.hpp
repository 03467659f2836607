// The FeatureTracker and FeatureHistTracker figures of spec §11 (the testbed's tracking.py) for one kind of
// output (embed, proje, logit) of one batch: per-feature means and stds, torch.linalg.matrix_rank, the number of
// principal components, torch.corrcoef between rows, torch.cdist between rows, and teacher-student distances.
// Singular values come from Gram matrices formed in double by the backend's GEMM and solved on the host.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "dino/core/context.hpp"
#include "dino/core/error.hpp"
#include "dino/core/linalg.hpp"
#include "dino/core/tensor.hpp"

namespace dino {

struct FeatureStatsOptions {
  // rank(), nPC(var_explained=...) and corr().rank(): three symmetric eigenvalue problems of size min(N, D) per
  // matrix (spec A12 allows them every log_every steps only). Without them those names are absent.
  bool svd = true;
};

namespace detail {

// Doubles per Gram chunk (16 MiB): bounds the memory of wide outputs such as [1536, 65536] logits.
constexpr Index kGramChunk = Index(1) << 21;
// Row blocks of the N x N Gram: only blocks on and below the diagonal are multiplied (about 60% of a full GEMM).
constexpr Index kGramRowBlock = 256;

// Mirrors the lower triangle of the n x n row-major g into its upper triangle.
inline void mirror_lower(std::vector<double>& g, Index n) {
  for (Index i = 0; i < n; ++i)
    for (Index j = i + 1; j < n; ++j)
      g[static_cast<std::size_t>(i * n + j)] = g[static_cast<std::size_t>(j * n + i)];
}

// M M^T for M [n, d] (symmetric, lower triangle computed), in double with B::gemm over chunks of columns.
// fill(j0, w, buf) writes columns [j0, j0 + w) of M into buf [n, w].
template <class B, class Fill>
std::vector<double> row_gram(Ctx<B>& ctx, Index n, Index d, Fill fill) {
  const Index w_max = std::max<Index>(1, std::min<Index>(d, kGramChunk / n));
  std::vector<double> host(static_cast<std::size_t>(n * w_max));
  Tensor<double, B> chunk(Shape{n, w_max}), gram(Shape{n, n});
  for (Index j0 = 0; j0 < d; j0 += w_max) {
    const Index w = std::min(w_max, d - j0);
    fill(j0, w, host.data());
    B::copy_from_host(chunk.data(), host.data(), n * w);
    const double beta = j0 == 0 ? 0.0 : 1.0;
    for (Index i0 = 0; i0 < n; i0 += kGramRowBlock) {
      const Index i1 = std::min(n, i0 + kGramRowBlock);
      B::gemm(ctx, false, true, i1 - i0, i1, w, 1.0, chunk.data() + i0 * w, w, chunk.data(), w, beta,
              gram.data() + i0 * n, n);
    }
  }
  std::vector<double> g = gram.to_host();
  mirror_lower(g, n);
  return g;
}

// M^T M for M [n, d] (used when d < n), over chunks of rows; fill(i0, h, buf) writes rows [i0, i0 + h) into
// buf [h, d].
template <class B, class Fill>
std::vector<double> col_gram(Ctx<B>& ctx, Index n, Index d, Fill fill) {
  const Index h_max = std::max<Index>(1, std::min<Index>(n, kGramChunk / d));
  std::vector<double> host(static_cast<std::size_t>(h_max * d));
  Tensor<double, B> chunk(Shape{h_max, d}), gram(Shape{d, d});
  for (Index i0 = 0; i0 < n; i0 += h_max) {
    const Index h = std::min(h_max, n - i0);
    fill(i0, h, host.data());
    B::copy_from_host(chunk.data(), host.data(), h * d);
    B::gemm(ctx, true, false, d, d, h, 1.0, chunk.data(), d, chunk.data(), d, i0 == 0 ? 0.0 : 1.0, gram.data(), d);
  }
  return gram.to_host();
}

// Mean and unbiased std of v (torch's v.mean(), v.std()): NaN std for one element, as torch.
inline void mean_std(const std::vector<double>& v, double& mean, double& std_) {
  double s = 0;
  for (double x : v) s += x;
  mean = s / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  std_ = std::sqrt(ss / static_cast<double>(v.size() - 1));
}

inline double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());  // NaN for none, as torch's mean of an empty tensor
}

// The smallest eigenvalue a Gram matrix formed and solved in double resolves, relative to its largest: its
// entries carry rounding errors of order L * eps * lambda_max (dot products of length L = max(n, d)) and the
// eigensolver adds about k * eps * lambda_max (k = its size). Below this, eigenvalues are rounding noise, also of
// an exactly rank-deficient matrix. On the singular-value scale the floor is sqrt(L * eps_double): 3.8e-6 for
// L = 65536, far below torch's float32 tolerance L * eps_float (the floor never decides a float run) but above
// torch's float64 tolerance L * eps_double. Double runs therefore count only singular values above
// sigma_max * sqrt(L * eps_double) (a documented deviation: torch would also count those between its own
// tolerance and this floor, which only nearly degenerate data have).
inline double gram_floor(Index n, Index d) {
  return static_cast<double>(std::max(n, d)) * std::numeric_limits<double>::epsilon();
}

// torch.linalg.matrix_rank of M from the eigenvalues lam of its Gram matrix: singular values sqrt(max(lam, 0)),
// tolerance sigma_max * max(n, d) * eps of the run's type (torch's default rtol), raised to the Gram floor.
inline double rank_from_gram(const std::vector<double>& lam, Index n, Index d, double eps_t) {
  const double lmax = lam.empty() ? 0.0 : std::max(lam.back(), 0.0);
  const double tol = std::sqrt(lmax) * static_cast<double>(std::max(n, d)) * eps_t;
  const double tol2 = std::max(tol * tol, lmax * gram_floor(n, d));
  double r = 0;
  for (double l : lam) r += l > tol2 ? 1 : 0;
  return r;
}

// Number of principal components (spec §11): numel - #{thr < cumsum(sigma) / sum(sigma)} with sigma the singular
// values of the column-centred matrix, descending; lam ascending eigenvalues of its Gram. Singular values below
// the Gram floor are rounding noise and set to zero (torch's are of order eps and add nothing to the sums).
inline void npc_from_gram(const std::vector<double>& lam, Index n, Index d, const double (&thr)[3], double (&count)[3]) {
  const double lmax = lam.empty() ? 0.0 : std::max(lam.back(), 0.0);
  const double floor = lmax * gram_floor(n, d);
  std::vector<double> sigma;
  sigma.reserve(lam.size());
  for (auto it = lam.rbegin(); it != lam.rend(); ++it) sigma.push_back(*it > floor ? std::sqrt(*it) : 0.0);
  double total = 0;
  for (double s : sigma) total += s;
  for (int t = 0; t < 3; ++t) {
    double above = 0, cum = 0;
    for (double s : sigma) {
      cum += s;
      above += (thr[t] < cum / total) ? 1 : 0;  // a zero total gives NaN ratios: nothing above, as torch
    }
    count[t] = static_cast<double>(sigma.size()) - above;
  }
}

// torch.linalg.matrix_rank of the n x n correlation matrix C from its eigenvalues mu (its singular values are
// |mu|): tolerance max|mu| * n * eps of the run's type, raised to the floor of the Gram that C is.
inline double corr_rank(const std::vector<double>& mu, Index n, Index d, double eps_t) {
  double smax = 0;
  for (double m : mu) smax = std::max(smax, std::abs(m));
  const double tol = std::max(smax * static_cast<double>(n) * eps_t, smax * gram_floor(n, d));
  double r = 0;
  for (double m : mu) r += std::abs(m) > tol ? 1 : 0;
  return r;
}

template <class T>
bool all_finite(const std::vector<T>& x) {
  for (T v : x)
    if (!std::isfinite(v)) return false;
  return true;
}

// The figures of one matrix x [n, d] (host copy), named base + "x.mean().mean()" and so on.
template <class T, class B>
void matrix_figures(Ctx<B>& ctx, const std::vector<T>& x, Index n, Index d, const FeatureStatsOptions& o,
                    const std::string& base, std::map<std::string, double>& out,
                    std::map<std::string, std::vector<double>>* hist) {
  auto at = [&](Index i, Index j) { return static_cast<double>(x[static_cast<std::size_t>(i * d + j)]); };
  const std::size_t nd = static_cast<std::size_t>(d);

  // Per-feature mean and unbiased std over rows (x.mean(dim=0), x.std(dim=0)), two passes in row order.
  std::vector<double> mu(nd, 0.0), sd(nd, 0.0);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) mu[static_cast<std::size_t>(j)] += at(i, j);
  for (double& m : mu) m /= static_cast<double>(n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) {
      const double c = at(i, j) - mu[static_cast<std::size_t>(j)];
      sd[static_cast<std::size_t>(j)] += c * c;
    }
  for (double& s : sd) s = std::sqrt(s / static_cast<double>(n - 1));
  double m1, s1, m2, s2;
  mean_std(mu, m1, s1);
  mean_std(sd, m2, s2);
  out[base + "x.mean().mean()"] = m1;
  out[base + "x.mean().std()"] = s1;
  out[base + "x.std().mean()"] = m2;
  out[base + "x.std().std()"] = s2;

  // Rows centred and scaled to unit norm give corrcoef as their Gram matrix (the (D - 1) of the covariance and
  // of the variances cancel). A row of equal values has no correlation: a zero row, as torch's NaN turned 0 by
  // nan_to_num (torch gets that NaN only when the row's mean rounds back to the value; here always).
  std::vector<double> row_mean(static_cast<std::size_t>(n)), row_scale(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    double s = 0;
    bool constant = true;
    for (Index j = 0; j < d; ++j) {
      s += at(i, j);
      constant = constant && at(i, j) == at(i, 0);
    }
    const double m = s / static_cast<double>(d);
    double ss = 0;
    for (Index j = 0; j < d; ++j) ss += (at(i, j) - m) * (at(i, j) - m);
    row_mean[static_cast<std::size_t>(i)] = m;
    row_scale[static_cast<std::size_t>(i)] = constant || !(ss > 0) ? 0.0 : 1.0 / std::sqrt(ss);
  }
  auto centred = [&](Index i, Index j) { return at(i, j) - mu[static_cast<std::size_t>(j)]; };
  auto standardised = [&](Index i, Index j) {
    return (at(i, j) - row_mean[static_cast<std::size_t>(i)]) * row_scale[static_cast<std::size_t>(i)];
  };
  auto by_columns = [&](auto f) {
    return [&, f](Index j0, Index w, double* buf) {
      for (Index i = 0; i < n; ++i)
        for (Index j = 0; j < w; ++j) buf[i * w + j] = f(i, j0 + j);
    };
  };
  auto by_rows = [&](auto f) {
    return [&, f](Index i0, Index h, double* buf) {
      for (Index i = 0; i < h; ++i)
        for (Index j = 0; j < d; ++j) buf[i * d + j] = f(i0 + i, j);
    };
  };
  // The column-centred Gram gives the distances (translation invariant, and better conditioned than the raw
  // Gram: no common offset to cancel) and, for n <= d, the principal components.
  std::vector<double> gc = row_gram(ctx, n, d, by_columns(centred));
  std::vector<double> corr = row_gram(ctx, n, d, by_columns(standardised));
  auto g = [n](const std::vector<double>& m, Index i, Index j) { return m[static_cast<std::size_t>(i * n + j)]; };

  // Upper triangles (offset 1) in torch.triu_indices order. corrcoef clamps to [-1, 1]; NaN becomes 0.
  const std::size_t pairs = static_cast<std::size_t>(n) * static_cast<std::size_t>(n - 1) / 2;
  std::vector<double> pdist, corr_triu;
  pdist.reserve(pairs);
  corr_triu.reserve(pairs);
  for (double& c : corr) c = std::isnan(c) ? 0.0 : std::min(1.0, std::max(-1.0, c));
  for (Index i = 0; i < n; ++i)
    for (Index j = i + 1; j < n; ++j) {
      corr_triu.push_back(g(corr, i, j));
      pdist.push_back(std::sqrt(std::max(g(gc, i, i) + g(gc, j, j) - 2 * g(gc, i, j), 0.0)));
    }
  out[base + "x.corr().mean()"] = mean_of(corr_triu);
  out[base + "x.pdist().mean()"] = mean_of(pdist);

  if (o.svd) {
    const double eps_t = std::numeric_limits<T>::epsilon();
    const double thr[3] = {0.95, 0.99, 0.999};
    const char* npc_names[3] = {"x.nPC(var_explained=0.95)", "x.nPC(var_explained=0.99)", "x.nPC(var_explained=0.999)"};
    double rank = std::numeric_limits<double>::quiet_NaN(), crank = rank, npc[3] = {rank, rank, rank};
    // Non-finite features: torch's SVD fails and the testbed logs NaN.
    if (all_finite(x)) {
      std::vector<double> lam_raw, lam_centred, lam_corr;
      if (n <= d) {
        // X X^T = Xc Xc^T + v 1^T + 1 v^T + |mu|^2 1 1^T with v = Xc mu: the raw Gram without another GEMM.
        std::vector<double> v(static_cast<std::size_t>(n), 0.0);
        double mu2 = 0;
        for (double m : mu) mu2 += m * m;
        for (Index i = 0; i < n; ++i)
          for (Index j = 0; j < d; ++j) v[static_cast<std::size_t>(i)] += centred(i, j) * mu[static_cast<std::size_t>(j)];
        std::vector<double> raw = gc;
        for (Index i = 0; i < n; ++i)
          for (Index j = 0; j < n; ++j)
            raw[static_cast<std::size_t>(i * n + j)] += v[static_cast<std::size_t>(i)] + v[static_cast<std::size_t>(j)] + mu2;
        lam_raw = symmetric_eigenvalues(std::move(raw), n);
        lam_centred = symmetric_eigenvalues(gc, n);
        lam_corr = symmetric_eigenvalues(corr, n);
      } else {
        // d < n: the d x d Grams have the same nonzero eigenvalues and are cheaper.
        lam_raw = symmetric_eigenvalues(col_gram(ctx, n, d, by_rows(at)), d);
        lam_centred = symmetric_eigenvalues(col_gram(ctx, n, d, by_rows(centred)), d);
        lam_corr = symmetric_eigenvalues(col_gram(ctx, n, d, by_rows(standardised)), d);
      }
      rank = rank_from_gram(lam_raw, n, d, eps_t);
      npc_from_gram(lam_centred, n, d, thr, npc);
      crank = corr_rank(lam_corr, n, d, eps_t);
    }
    out[base + "x.rank()"] = rank;
    for (int t = 0; t < 3; ++t) out[base + npc_names[t]] = npc[t];
    out[base + "x.corr().rank()"] = crank;
  }

  if (hist) {
    (*hist)[base + "x.mean().hist()"] = mu;
    (*hist)[base + "x.std().hist()"] = sd;
    (*hist)[base + "x.corr().hist()"] = std::move(corr_triu);
    (*hist)[base + "x.pdist().hist()"] = std::move(pdist);
  }
}

}  // namespace detail

// The FeatureTracker figures (and with `histograms`, the FeatureHistTracker's value vectors) of one output kind:
// t_x [Nt, D] teacher outputs, s_x [Ns, D] student outputs, rows crop-major (the model's [C, B, D] stacks
// flattened); the first Nt student rows are s_gx, the student's view of the teacher's crops. Names are
// "{prefix}/feat/{kind}/..." as spec §11; returns name -> value. Means and stds are computed in double on the
// host, Gram matrices in double with the backend's GEMM.
template <class T, class B>
std::map<std::string, double> feature_stats(Ctx<B>& ctx, const std::string& prefix, const std::string& kind,
                                            const Tensor<T, B>& t_x, const Tensor<T, B>& s_x,
                                            const FeatureStatsOptions& o = {},
                                            std::map<std::string, std::vector<double>>* histograms = nullptr) {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  DINO_CHECK(!prefix.empty() && !kind.empty(), "feature_stats: empty prefix or kind");
  DINO_CHECK(t_x.rank() == 2 && s_x.rank() == 2, "feature_stats(", kind, "): the outputs must be [N, D] matrices, got t_x ",
             t_x.shape().str(), " and s_x ", s_x.shape().str());
  const Index nt = t_x.size(0), ns = s_x.size(0), d = t_x.size(1);
  DINO_CHECK(s_x.size(1) == d, "feature_stats(", kind, "): t_x ", t_x.shape().str(), " and s_x ", s_x.shape().str(),
             " have different feature sizes");
  DINO_CHECK(nt > 0 && d > 0, "feature_stats(", kind, "): empty outputs ", t_x.shape().str());
  DINO_CHECK(ns >= nt, "feature_stats(", kind, "): the student has ", ns, " rows, fewer than the teacher's ", nt,
             " (its first rows must be the teacher's crops)");

  const std::string base = prefix + "/feat/" + kind + "/";
  std::map<std::string, double> out;
  const std::vector<T> t = t_x.to_host(), s = s_x.to_host();
  detail::matrix_figures(ctx, t, nt, d, o, base + "t_", out, histograms);
  detail::matrix_figures(ctx, s, ns, d, o, base + "s_", out, histograms);

  // Row-wise teacher vs student on the teacher's crops: (t - s).norm(dim=-1), its RMS, and the testbed's
  // cosine dot / (|t| |s|) (no epsilon: a zero row gives NaN, as there).
  std::vector<double> l2(static_cast<std::size_t>(nt)), rmse(l2.size()), cos(l2.size());
  for (Index i = 0; i < nt; ++i) {
    double dd = 0, tt = 0, ss = 0, ts = 0;
    for (Index j = 0; j < d; ++j) {
      const double a = t[static_cast<std::size_t>(i * d + j)], b = s[static_cast<std::size_t>(i * d + j)];
      dd += (a - b) * (a - b);
      tt += a * a;
      ss += b * b;
      ts += a * b;
    }
    l2[static_cast<std::size_t>(i)] = std::sqrt(dd);
    rmse[static_cast<std::size_t>(i)] = std::sqrt(dd / static_cast<double>(d));
    cos[static_cast<std::size_t>(i)] = ts / (std::sqrt(tt) * std::sqrt(ss));
  }
  out[base + "l2(t_x,s_x).mean()"] = detail::mean_of(l2);
  out[base + "rmse(t_x,s_x).mean()"] = detail::mean_of(rmse);
  out[base + "cos(t_x,s_x).mean()"] = detail::mean_of(cos);
  if (histograms) {
    (*histograms)[base + "l2(t_x,s_x).hist()"] = std::move(l2);
    (*histograms)[base + "rmse(t_x,s_x).hist()"] = std::move(rmse);
    (*histograms)[base + "cos(t_x,s_x).hist()"] = std::move(cos);
  }
  return out;
}

}  // namespace dino

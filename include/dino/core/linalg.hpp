// Eigenvalues of a real symmetric matrix on the host, in double: Householder reduction to tridiagonal form,
// then implicit symmetric QR steps with Wilkinson shifts (Golub & Van Loan, §8.3). Both are backward stable.
// The FeatureTracker (train/feature_tracker.hpp) takes singular values as the square roots of Gram eigenvalues.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/shape.hpp"

namespace dino {

namespace detail {

// Row r of a packed lower triangle (row r holds columns 0..r).
inline std::size_t packed_row(Index r) { return static_cast<std::size_t>(r) * static_cast<std::size_t>(r + 1) / 2; }

// sum_j a[j] * b[j] with eight independent partial sums, so that the compiler vectorises it without
// reassociating on its own (the order is fixed, so the result is too).
inline double dot8(const double* a, const double* b, Index n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  Index j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[j + k] * b[j + k];
  for (; j < n; ++j) s[0] += a[j] * b[j];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// Householder reduction of the packed lower triangle l (n x n) to a symmetric tridiagonal matrix with diagonal
// d[0..n-1] and off-diagonal e[0..n-2] (e[i] couples i and i+1); l is overwritten. Rows are reduced from the
// last to the first, each step a similarity transform of the leading block by P = I - u u^T / h, i.e. the
// rank-2 update A <- A - q u^T - u q^T. The work is memory-bound, so the updates are deferred over a panel of
// kPanel steps (as LAPACK's dsytrd/dlatrd): each step reads the stored block once for its matrix-vector product
// and corrects it with the panel's vectors; the panel's rank-2k update then runs over tiles that stay in cache.
inline void tridiagonalize(std::vector<double>& l, Index n, std::vector<double>& d, std::vector<double>& e) {
  constexpr Index kPanel = 16, kTile = 256;
  d.assign(static_cast<std::size_t>(n), 0.0);
  e.assign(static_cast<std::size_t>(std::max<Index>(n - 1, 0)), 0.0);
  if (n == 0) return;
  const std::size_t sn = static_cast<std::size_t>(n);
  // The panel's pending updates: A_true = A_stored - sum_k (Q_k U_k^T + U_k Q_k^T); row k of U and Q.
  std::vector<double> U(static_cast<std::size_t>(kPanel) * sn), Q(U.size());
  std::vector<double> row(sn), p(sn), ut(static_cast<std::size_t>(kPanel)), qt(ut.size());
  Index nk = 0;
  auto uk = [&](Index k) { return U.data() + static_cast<std::size_t>(k) * sn; };
  auto qk = [&](Index k) { return Q.data() + static_cast<std::size_t>(k) * sn; };
  // Applies the panel to rows 0..m-1 (columns j <= r), tile by tile so that the vectors' slices stay in L1.
  auto flush = [&](Index m) {
    for (Index j0 = 0; j0 < m; j0 += kTile) {
      const Index j1 = std::min(m, j0 + kTile);
      for (Index r = j0; r < m; ++r) {
        double* __restrict a = l.data() + packed_row(r);
        const Index jend = std::min(r + 1, j1);
        for (Index k = 0; k < nk; ++k) {
          const double* __restrict u = uk(k);
          const double* __restrict q = qk(k);
          const double qr = q[r], ur = u[r];
          for (Index j = j0; j < jend; ++j) a[j] -= qr * u[j] + ur * q[j];
        }
      }
    }
    nk = 0;
  };
  for (Index i = n - 1; i >= 1; --i) {
    // Row i as it stands after the pending updates.
    const double* stored = l.data() + packed_row(i);
    for (Index j = 0; j <= i; ++j) row[static_cast<std::size_t>(j)] = stored[j];
    for (Index k = 0; k < nk; ++k) {
      const double* u = uk(k);
      const double* q = qk(k);
      const double qi = q[i], ui = u[i];
      for (Index j = 0; j <= i; ++j) row[static_cast<std::size_t>(j)] -= qi * u[j] + ui * q[j];
    }
    d[static_cast<std::size_t>(i)] = row[static_cast<std::size_t>(i)];
    // The vector that maps row[0..i-1] onto its last coordinate, scaled by the 1-norm against over/underflow.
    double scale = 0;
    for (Index j = 0; j < i; ++j) scale += std::abs(row[static_cast<std::size_t>(j)]);
    if (i == 1 || scale == 0) {
      e[static_cast<std::size_t>(i - 1)] = row[static_cast<std::size_t>(i - 1)];
      continue;
    }
    double* __restrict v = uk(nk);
    double h = 0;
    for (Index j = 0; j < i; ++j) {
      v[j] = row[static_cast<std::size_t>(j)] / scale;
      h += v[j] * v[j];
    }
    const double f = v[i - 1];
    const double g = f >= 0 ? -std::sqrt(h) : std::sqrt(h);
    e[static_cast<std::size_t>(i - 1)] = scale * g;
    h -= f * g;  // = ||v||^2 / 2 after the next line
    v[i - 1] = f - g;
    for (Index j = i; j < n; ++j) v[j] = 0;

    // p = A_stored v over the leading block, from the lower triangle (row r's entries j < r stand for both
    // (r, j) and (j, r)); the row's dot product re-reads it from L1.
    double* __restrict pp = p.data();
    std::fill(pp, pp + i, 0.0);
    for (Index r = 0; r < i; ++r) {
      const double* __restrict a = l.data() + packed_row(r);
      const double vr = v[r];
      for (Index j = 0; j < r; ++j) pp[j] += a[j] * vr;
      pp[r] += dot8(a, v, r + 1);
    }
    // ... minus the pending updates: (Q U^T + U Q^T) v = Q (U^T v) + U (Q^T v).
    for (Index k = 0; k < nk; ++k) {
      ut[static_cast<std::size_t>(k)] = dot8(uk(k), v, i);
      qt[static_cast<std::size_t>(k)] = dot8(qk(k), v, i);
    }
    for (Index k = 0; k < nk; ++k) {
      const double* u = uk(k);
      const double* q = qk(k);
      const double a = ut[static_cast<std::size_t>(k)], b = qt[static_cast<std::size_t>(k)];
      for (Index j = 0; j < i; ++j) pp[j] -= q[j] * a + u[j] * b;
    }
    // q = p / h - K v with K = v^T p / (2 h^2): then P A P = A - q v^T - v q^T on the leading block.
    double vp = 0;
    for (Index j = 0; j < i; ++j) {
      pp[j] /= h;
      vp += v[j] * pp[j];
    }
    const double kk = vp / (2 * h);
    double* q = qk(nk);
    for (Index j = 0; j < i; ++j) q[j] = pp[j] - kk * v[j];
    for (Index j = i; j < n; ++j) q[j] = 0;
    if (++nk == kPanel) flush(i);
  }
  // The last entry, after the updates still pending.
  double a00 = l[0];
  for (Index k = 0; k < nk; ++k) a00 -= 2 * qk(k)[0] * uk(k)[0];
  d[0] = a00;
}

// Eigenvalues of the symmetric tridiagonal matrix (d, e) in place into d, by implicit QR steps with the
// Wilkinson shift on the lowest unreduced block, deflating off-diagonals below eps * (|d_i| + |d_i+1|).
inline void tridiagonal_eigenvalues(std::vector<double>& d, std::vector<double>& e) {
  const Index n = static_cast<Index>(d.size());
  const double eps = std::numeric_limits<double>::epsilon();
  const double tiny = std::numeric_limits<double>::min();
  Index steps = 0;
  const Index max_steps = 30 * std::max<Index>(n, 1);  // LAPACK's bound; typically 2 or 3 per eigenvalue
  Index hi = n - 1;
  while (hi > 0) {
    for (Index i = 0; i < hi; ++i) {
      const std::size_t s = static_cast<std::size_t>(i);
      if (std::abs(e[s]) <= eps * (std::abs(d[s]) + std::abs(d[s + 1])) || std::abs(e[s]) < tiny) e[s] = 0;
    }
    if (e[static_cast<std::size_t>(hi - 1)] == 0) {
      --hi;
      continue;
    }
    Index lo = hi - 1;
    while (lo > 0 && e[static_cast<std::size_t>(lo - 1)] != 0) --lo;
    DINO_CHECK(++steps <= max_steps, "symmetric_eigenvalues: the QR iteration did not converge");
    // Wilkinson shift: the eigenvalue of the trailing 2x2 block nearer to its last diagonal entry.
    const double dl = d[static_cast<std::size_t>(hi - 1)], dh = d[static_cast<std::size_t>(hi)];
    const double eh = e[static_cast<std::size_t>(hi - 1)];
    const double delta = (dl - dh) / 2;
    const double denom = delta + (delta >= 0 ? 1.0 : -1.0) * std::hypot(delta, eh);
    const double mu = dh - eh * (eh / denom);
    // Chase the bulge: rotations in planes (k, k+1) with Q [x; z] = [r; 0], Q = [c s; -s c], T <- Q T Q^T.
    double x = d[static_cast<std::size_t>(lo)] - mu, z = e[static_cast<std::size_t>(lo)];
    for (Index k = lo; k < hi; ++k) {
      const std::size_t s0 = static_cast<std::size_t>(k);
      // The matrix was scaled to entries of order 1, so x^2 + z^2 cannot overflow; hypot (slow) only where
      // the squares could underflow.
      double r = std::sqrt(x * x + z * z);
      if (r < 1e-150) r = std::hypot(x, z);
      const double c = r == 0 ? 1.0 : x / r, s = r == 0 ? 0.0 : z / r;
      if (k > lo) e[s0 - 1] = r;
      const double a = d[s0], b = e[s0], dd = d[s0 + 1];
      const double cs = c * s, cc = c * c, ss = s * s;
      d[s0] = cc * a + 2 * cs * b + ss * dd;
      d[s0 + 1] = ss * a - 2 * cs * b + cc * dd;
      e[s0] = cs * (dd - a) + (cc - ss) * b;
      if (k + 1 < hi) {
        const double f = e[s0 + 1];
        z = s * f;  // the bulge at (k+2, k)
        e[s0 + 1] = c * f;
        x = e[s0];
      }
    }
  }
}

}  // namespace detail

// The eigenvalues, ascending, of the symmetric n x n matrix a (row-major; only the lower triangle is read),
// with errors of order n * eps * max|eigenvalue|. O(n^3), single-threaded: n = 1536 takes about 0.4 s.
inline std::vector<double> symmetric_eigenvalues(std::vector<double> a, Index n) {
  DINO_CHECK(n >= 0, "symmetric_eigenvalues: negative size ", n);
  DINO_CHECK(static_cast<Index>(a.size()) == n * n, "symmetric_eigenvalues: ", a.size(), " values for a ", n, "x", n,
             " matrix");
  // Pack the lower triangle, scaled by a power of two (exact) so that the largest entry is about 1: squares
  // and norms then neither overflow nor underflow.
  std::vector<double> l(detail::packed_row(n));
  double amax = 0;
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j <= i; ++j) {
      const double v = a[static_cast<std::size_t>(i * n + j)];
      DINO_CHECK(std::isfinite(v), "symmetric_eigenvalues: entry (", i, ", ", j, ") is not finite");
      amax = std::max(amax, std::abs(v));
    }
  if (amax == 0) return std::vector<double>(static_cast<std::size_t>(n), 0.0);
  int exponent = 0;
  std::frexp(amax, &exponent);
  const double down = std::ldexp(1.0, -exponent);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j <= i; ++j)
      l[detail::packed_row(i) + static_cast<std::size_t>(j)] = a[static_cast<std::size_t>(i * n + j)] * down;
  a.clear();
  a.shrink_to_fit();

  std::vector<double> d, e;
  detail::tridiagonalize(l, n, d, e);
  l.clear();
  l.shrink_to_fit();
  detail::tridiagonal_eigenvalues(d, e);
  for (double& v : d) v = std::ldexp(v, exponent);
  std::sort(d.begin(), d.end());
  return d;
}

}  // namespace dino

// CPU row-wise softmax, log-softmax, entropies and the multicrop losses' row terms (F.log_softmax and its
// backward, the testbed's entropy / cross-entropy / MSE rows), plus the head's centring maps.
// Rows run in parallel; each row is reduced alone in a fixed order, so results do not depend on threads.
#pragma once
#include <algorithm>

#include "dino/core/rowwise_math.hpp"
#include "dino/cpu/parallel.hpp"

namespace dino::cpu {

struct RowwiseOps {
  // x [rows, cols] -> logp [rows, cols] = log_softmax(x) along cols; entropy [rows] (if not null) receives
  // -sum_k exp(logp) logp. Overwrites both.
  template <class T>
  static void log_softmax_rows(Ctx<Cpu>&, const T* x, Index rows, Index cols, T* logp, T* entropy) {
    parallel_for(
        rows,
        [=](Index r) {
          const T* xr = x + r * cols;
          T* lr = logp + r * cols;
          T mx = cols > 0 ? xr[0] : T(0);
          for (Index j = 1; j < cols; ++j) mx = math::max_nan(mx, xr[j]);
          const T log_sum = math::log_(row_sum<T>(cols, [=](Index j) { return math::softmax_term(xr[j], mx); }));
          for (Index j = 0; j < cols; ++j) lr[j] = math::log_softmax_value(xr[j], mx, log_sum);
          if (entropy) entropy[r] = row_sum<T>(cols, [=](Index j) { return math::entropy_term(lr[j]); });
        },
        row_grain(cols));
  }

  // p [n] = exp(logp [n]): softmax probabilities from log_softmax_rows' output, as torch.exp(log_softmax).
  template <class T>
  static void exp_map(Ctx<Cpu>&, const T* logp, Index n, T* p) {
    parallel_for(n, [=](Index i) { p[i] = math::exp_(logp[i]); });
  }

  // q [rows, cols] = one_hot(labels, cols); labels [rows] hold class indices in [0, cols) as T values.
  template <class T>
  static void one_hot_rows(Ctx<Cpu>&, const T* labels, Index rows, Index cols, T* q) {
    parallel_for(
        rows,
        [=](Index r) {
          const Index y = static_cast<Index>(labels[r]);
          T* qr = q + r * cols;
          for (Index j = 0; j < cols; ++j) qr[j] = j == y ? T(1) : T(0);
        },
        row_grain(cols));
  }

  // out [rows] = sum_k q[r, k] * -logp[r, k]: the cross-entropy of targets q [rows, cols] and predictions
  // logp [rows, cols]. Overwrites out.
  template <class T>
  static void cross_entropy_rows(Ctx<Cpu>&, const T* q, const T* logp, Index rows, Index cols, T* out) {
    parallel_for(
        rows,
        [=](Index r) {
          const T* qr = q + r * cols;
          const T* lr = logp + r * cols;
          out[r] = row_sum<T>(cols, [=](Index j) { return math::cross_entropy_term(qr[j], lr[j]); });
        },
        row_grain(cols));
  }

  // out [rows] = mean_k (t[r, k] - s[r, k])^2 for t, s [rows, cols]. Overwrites out.
  template <class T>
  static void mse_rows(Ctx<Cpu>&, const T* t, const T* s, Index rows, Index cols, T* out) {
    parallel_for(
        rows,
        [=](Index r) {
          const T* tr = t + r * cols;
          const T* sr = s + r * cols;
          out[r] = row_sum<T>(cols, [=](Index j) { return math::squared_diff(tr[j], sr[j]); }) / static_cast<T>(cols);
        },
        row_grain(cols));
  }

  // dx [rows, cols] = g - exp(logp) * sum_k g, the gradient through log_softmax of the gradient g with
  // respect to its output. Overwrites dx, which may alias g.
  template <class T>
  static void log_softmax_backward_rows(Ctx<Cpu>&, const T* logp, const T* g, Index rows, Index cols, T* dx) {
    parallel_for(
        rows,
        [=](Index r) {
          const T* lr = logp + r * cols;
          const T* gr = g + r * cols;
          T* dr = dx + r * cols;
          const T sum_g = row_sum<T>(cols, [=](Index j) { return gr[j]; });
          for (Index j = 0; j < cols; ++j) dr[j] = math::log_softmax_grad(gr[j], lr[j], sum_g);
        },
        row_grain(cols));
  }

  // dx [rows, cols] = w * d entropy[r] / d x[r, :], from logp = log_softmax(x) and the row entropies [rows].
  // Overwrites dx.
  template <class T>
  static void entropy_backward_rows(Ctx<Cpu>&, const T* logp, const T* entropy, Index rows, Index cols, T w, T* dx) {
    parallel_for(rows * cols, [=](Index i) { dx[i] = math::entropy_grad(logp[i], entropy[i / cols], w); });
  }

  // dx [n] += coef * (s - t): the gradient of coef/2 * sum (t - s)^2 with respect to s. Accumulates.
  template <class T>
  static void squared_diff_backward(Ctx<Cpu>&, const T* t, const T* s, Index n, T coef, T* dx) {
    parallel_for(n, [=](Index i) { dx[i] += math::squared_diff_grad(t[i], s[i], coef); });
  }

  // logits [rows, cols] = (proj - cent) / temp with cent [cols]. Overwrites logits.
  template <class T>
  static void center_logits(Ctx<Cpu>&, const T* proj, const T* cent, Index rows, Index cols, T temp, T* logits) {
    parallel_for(rows * cols, [=](Index i) { logits[i] = math::center_logit(proj[i], cent[i % cols], temp); });
  }

  // dproj [n] = dlogits / temp. Overwrites dproj.
  template <class T>
  static void center_logits_backward(Ctx<Cpu>&, const T* dlogits, Index n, T temp, T* dproj) {
    parallel_for(n, [=](Index i) { dproj[i] = dlogits[i] / temp; });
  }

  // cent [cols] = cent * cmom + (colsum / n_rows) * (1 - cmom), colsum the column sums of the projections.
  template <class T>
  static void center_update(Ctx<Cpu>&, T* cent, const T* colsum, Index n_rows, Index cols, T cmom) {
    const T n = static_cast<T>(n_rows);
    for (Index j = 0; j < cols; ++j) cent[j] = math::center_update(cent[j], colsum[j], n, cmom);
  }

 private:
  // Sums f(0..n) in blocks of a fixed size, added in order: the rounding error grows with the block size
  // plus the number of blocks instead of with n (rows of 65536 logits in float), and stays deterministic.
  template <class T, class F>
  static T row_sum(Index n, F f) {
    constexpr Index kBlock = 128;
    T total = 0;
    for (Index j0 = 0; j0 < n; j0 += kBlock) {
      const Index j1 = std::min(n, j0 + kBlock);
      T s = 0;
      for (Index j = j0; j < j1; ++j) s += f(j);
      total += s;
    }
    return total;
  }
  static Index row_grain(Index cols) { return cols >= kParallelGrain ? 1 : kParallelGrain / (cols > 0 ? cols : 1); }
};

}  // namespace dino::cpu

// Per-element rules of the row-wise ops (log-softmax, entropies, cross-entropies, MSE) and of the head's
// centring, shared by the CPU loops and the CUDA kernels. They mirror F.log_softmax, the testbed's
// U.entropy / U.cross_entropy (dinopl/core.py `multicrop_loss`) and DINOHead.forward's centre update.
#pragma once
#include "dino/core/math.hpp"

namespace dino::math {

// The shift of a stable softmax; a NaN anywhere in the row wins, as torch's max reduction, so that a
// non-finite logit shows up in the loss instead of being skipped.
template <class T>
DINO_HD inline T max_nan(T a, T b) { return (a != a || a > b) ? a : b; }

// One term of the shifted sum exp(x - max) whose log is the log-sum-exp.
template <class T>
DINO_HD inline T softmax_term(T x, T max) { return exp_(x - max); }

// log_softmax(x) = (x - max) - log(sum exp(x - max)), in torch's operand order.
template <class T>
DINO_HD inline T log_softmax_value(T x, T max, T log_sum) { return (x - max) - log_sum; }

// One term of the entropy -sum p log p with p = exp(log p), written as the testbed's `p * -log_p`.
template <class T>
DINO_HD inline T entropy_term(T logp) { return exp_(logp) * -logp; }

// One term of the cross-entropy -sum q log p, as the testbed's `q * -log_p`.
template <class T>
DINO_HD inline T cross_entropy_term(T q, T logp) { return q * -logp; }

// One term of the squared error (t - s)^2 of the MSE loss.
template <class T>
DINO_HD inline T squared_diff(T t, T s) {
  const T d = t - s;
  return d * d;
}

// log_softmax's backward: dx = g - softmax(x) * sum(g), torch's _log_softmax_backward_data.
template <class T>
DINO_HD inline T log_softmax_grad(T g, T logp, T sum_g) { return g - exp_(logp) * sum_g; }

// Gradient of w * H(softmax(x)) with respect to x: -w p (log p + H), the row's entropy H.
template <class T>
DINO_HD inline T entropy_grad(T logp, T h, T w) { return -w * (exp_(logp) * (logp + h)); }

// Gradient of coef/2 * (t - s)^2 with respect to s, coef = 2 / (number of averaged terms).
template <class T>
DINO_HD inline T squared_diff_grad(T t, T s, T coef) { return coef * (s - t); }

// The head's logits (proj - cent) / temp.
template <class T>
DINO_HD inline T center_logit(T proj, T cent, T temp) { return (proj - cent) / temp; }

// The centre's EMA cent * cmom + (sum / n) * (1 - cmom), in the testbed's operand order; sum is the
// column sum of the projections over n rows, so sum / n is their (detached) mean.
template <class T>
DINO_HD inline T center_update(T cent, T sum, T n, T cmom) { return cent * cmom + (sum / n) * (T(1) - cmom); }

}  // namespace dino::math

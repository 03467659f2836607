// Per-element optimizer updates shared by the CPU loops and the CUDA kernels: torch.optim.SGD, Adam and AdamW
// in their single-tensor (foreach=False) form of PyTorch 1.13/2.0, one element at a time, with the scalar
// factors PyTorch computes in Python (double) precomputed on the host and rounded to T as its kernels do.
#pragma once
#include <cmath>
#include <cstdint>

#include "dino/core/math.hpp"

namespace dino::optim {

// The scalars of one Adam/AdamW step of one parameter tensor, in T (torch casts each Python scalar to the
// tensor's dtype when it meets a tensor).
template <class T>
struct AdamFactors {
  T decay;            // AdamW's 1 - lr * weight_decay
  T weight_decay;     // Adam's L2 coefficient (g + wd * p)
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T bias_correction2_sqrt;
  T eps;
  T neg_step_size;    // -lr / (1 - beta1^step)
};

// Python's arithmetic of _single_tensor_adam(w) for the given per-tensor step count (after its increment).
template <class T>
inline AdamFactors<T> adam_factors(double lr, double weight_decay, double beta1, double beta2, double eps,
                                   std::int64_t step) {
  const double s = static_cast<double>(step);  // torch keeps step as a float tensor and reads it with item()
  const double bias_correction1 = 1 - std::pow(beta1, s);
  const double bias_correction2 = 1 - std::pow(beta2, s);
  AdamFactors<T> f;
  f.decay = static_cast<T>(1 - lr * weight_decay);
  f.weight_decay = static_cast<T>(weight_decay);
  f.beta1 = static_cast<T>(beta1);
  f.one_minus_beta1 = static_cast<T>(1 - beta1);
  f.beta2 = static_cast<T>(beta2);
  f.one_minus_beta2 = static_cast<T>(1 - beta2);
  f.bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  f.eps = static_cast<T>(eps);
  f.neg_step_size = static_cast<T>(-(lr / bias_correction1));
  return f;
}

// The moments and the parameter step common to Adam and AdamW, in torch's order: exp_avg.mul_(b1).add_(g,
// alpha=1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2); denom = (sqrt(v) / sqrt(bc2)).add_(eps);
// p.addcdiv_(m, denom, value=-step_size), addcmul/addcdiv evaluating (value * t1) op t2.
template <class T>
DINO_HD inline void adam_moments_and_step(T& p, T g, T& m, T& v, const AdamFactors<T>& f) {
  m = m * f.beta1 + f.one_minus_beta1 * g;
  v = v * f.beta2 + f.one_minus_beta2 * g * g;
  const T denom = math::sqrt_(v) / f.bias_correction2_sqrt + f.eps;
  p = p + f.neg_step_size * m / denom;
}

// torch.optim.AdamW: decoupled decay p *= 1 - lr*wd (applied even when wd is 0, a no-op), then Adam.
template <class T>
DINO_HD inline void adamw_element(T& p, T g, T& m, T& v, const AdamFactors<T>& f) {
  p = p * f.decay;
  adam_moments_and_step(p, g, m, v, f);
}

// torch.optim.Adam: L2 decay into a copy of the gradient (grad.add(p, alpha=wd), only when wd != 0; the
// stored gradient is left alone), then Adam.
template <class T>
DINO_HD inline void adam_element(T& p, T g, T& m, T& v, const AdamFactors<T>& f) {
  if (f.weight_decay != T(0)) g = g + f.weight_decay * p;
  adam_moments_and_step(p, g, m, v, f);
}

template <class T>
struct SgdFactors {
  T weight_decay;
  T momentum;
  T neg_lr;
};

template <class T>
inline SgdFactors<T> sgd_factors(double lr, double weight_decay, double momentum) {
  return {static_cast<T>(weight_decay), static_cast<T>(momentum), static_cast<T>(-lr)};
}

// torch.optim.SGD without dampening or Nesterov: d = g + wd*p (when wd != 0); buf = d on the tensor's first
// step, else buf*momentum + d; p += -lr * buf.
template <class T>
DINO_HD inline void sgd_momentum_element(T& p, T g, T& buf, bool first, const SgdFactors<T>& f) {
  if (f.weight_decay != T(0)) g = g + f.weight_decay * p;
  buf = first ? g : buf * f.momentum + g;
  p = p + f.neg_lr * buf;
}

// torch.optim.SGD with momentum 0: no buffer, p += -lr * d.
template <class T>
DINO_HD inline void sgd_element(T& p, T g, const SgdFactors<T>& f) {
  if (f.weight_decay != T(0)) g = g + f.weight_decay * p;
  p = p + f.neg_lr * g;
}

}  // namespace dino::optim

// Per-element rules shared by the CPU loops and the CUDA kernels. Each is written once as a DINO_HD function
// (__host__ __device__ under nvcc), so the CPU tests cover the arithmetic the GPU runs.
#pragma once
#include <math.h>

#if defined(__CUDACC__)
#define DINO_HD __host__ __device__
#else
#define DINO_HD
#endif

namespace dino::math {

DINO_HD inline float sqrt_(float x) { return ::sqrtf(x); }
DINO_HD inline double sqrt_(double x) { return ::sqrt(x); }
DINO_HD inline float exp_(float x) { return ::expf(x); }
DINO_HD inline double exp_(double x) { return ::exp(x); }
DINO_HD inline float log_(float x) { return ::logf(x); }
DINO_HD inline double log_(double x) { return ::log(x); }
DINO_HD inline float erf_(float x) { return ::erff(x); }
DINO_HD inline double erf_(double x) { return ::erf(x); }
template <class T>
DINO_HD inline T max_(T a, T b) { return a > b ? a : b; }
template <class T>
DINO_HD inline T min_(T a, T b) { return a < b ? a : b; }

// ReLU as torch.relu; its gradient is 0 at x == 0, as torch's threshold_backward.
template <class T>
DINO_HD inline T relu(T x) { return x > T(0) ? x : T(0); }
template <class T>
DINO_HD inline T relu_grad(T y, T dy) { return y > T(0) ? dy : T(0); }

// Exact GELU, torch.nn.GELU(approximate='none'): x * Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2.
template <class T>
DINO_HD inline T gelu(T x) {
  return T(0.5) * x * (T(1) + erf_(x * T(0.70710678118654752440)));
}
// d gelu / dx = Phi(x) + x * phi(x), phi the standard normal density.
template <class T>
DINO_HD inline T gelu_grad(T x) {
  const T cdf = T(0.5) * (T(1) + erf_(x * T(0.70710678118654752440)));
  const T pdf = T(0.39894228040143267794) * exp_(T(-0.5) * x * x);
  return cdf + x * pdf;
}

// Teacher EMA as the testbed applies it to weights and BN running stats.
template <class T>
DINO_HD inline T ema(T teacher, T student, T m) { return m * teacher + (T(1) - m) * student; }

// BatchNorm's running-statistics update (momentum 0.1 in torch), running_var takes the unbiased variance.
template <class T>
DINO_HD inline T running_update(T running, T batch, T momentum) {
  return (T(1) - momentum) * running + momentum * batch;
}

}  // namespace dino::math

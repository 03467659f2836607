// Per-element rules shared by the CPU loops and the CUDA kernels. Each is written once as a DINO_HD function
// (__host__ __device__ under nvcc), so the CPU tests cover the arithmetic the GPU runs.
#pragma once
#include <math.h>
#include <stdint.h>

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

// Normalisation layers (BatchNorm, GroupNorm). invstd = 1 / sqrt(var + eps), var the biased variance.
template <class T>
DINO_HD inline T inv_std(T var, T eps) { return T(1) / sqrt_(var + eps); }
// The normalised value x^ = (x - mean) * invstd.
template <class T>
DINO_HD inline T norm_xhat(T x, T mean, T invstd) { return (x - mean) * invstd; }
// The layer's output w * x^ + b.
template <class T>
DINO_HD inline T norm_affine(T x, T mean, T invstd, T w, T b) { return w * ((x - mean) * invstd) + b; }
// Input gradient through the statistics of the normalised set: with g = w * dy the gradient of x^,
// dx = invstd * (g - mean(g) - x^ * mean(g * x^)). Statistics held fixed (eval BatchNorm) pass zero means.
template <class T>
DINO_HD inline T norm_grad(T g, T xhat, T invstd, T mean_g, T mean_g_xhat) {
  return invstd * (g - mean_g - xhat * mean_g_xhat);
}

// Sliding 2-d windows (convolution, pooling) over an input [N, C, H, W]: kernel kh x kw, stride sh x sw,
// top/left zero padding ph, pw; the output is oh x ow (the bottom/right padding follows from it).
struct Window2d {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
  int64_t oh = 0, ow = 0;
};
// Input rows [window_lo, window_hi) under output row o (window k, stride s, padding p), clipped to [0, n).
template <class I>
DINO_HD inline I window_lo(I o, I s, I p) { return max_(o * s - p, I(0)); }
template <class I>
DINO_HD inline I window_hi(I o, I k, I s, I p, I n) { return min_(o * s - p + k, n); }
// Output rows [windows_lo, windows_hi) whose windows cover input row i: the gather form of a scatter.
template <class I>
DINO_HD inline I windows_lo(I i, I k, I s, I p) {
  const I a = i + p - k + 1;
  return a <= 0 ? I(0) : (a + s - 1) / s;
}
template <class I>
DINO_HD inline I windows_hi(I i, I s, I p, I out) { return min_((i + p) / s + 1, out); }
// Adaptive pooling's bin of output i: [floor(i * in / out), ceil((i + 1) * in / out)), as torch. The rule is
// its own inverse: the bins holding input i are adaptive_start(i, out, in) .. adaptive_end(i, out, in).
template <class I>
DINO_HD inline I adaptive_start(I i, I in, I out) { return (i * in) / out; }
template <class I>
DINO_HD inline I adaptive_end(I i, I in, I out) { return ((i + 1) * in + out - 1) / out; }
// Max pooling's update, as torch's kernels: a larger value or a NaN takes the place, and a NaN then stays.
template <class T>
DINO_HD inline bool max_pool_takes(T v, T best) { return v > best || v != v; }
// Average pooling's divisor for the window whose padded-coordinate corner is (hs, ws), as torch: the window
// clipped to the padded input, or to the input itself without count_include_pad.
template <class I>
DINO_HD inline I avg_pool_divisor(I hs, I ws, I kh, I kw, I h, I w, I ph, I pw, bool count_include_pad) {
  const I he = min_(hs + kh, h + ph), we = min_(ws + kw, w + pw);
  if (count_include_pad) return (he - hs) * (we - ws);
  return (min_(he, h) - max_(hs, I(0))) * (min_(we, w) - max_(ws, I(0)));
}
// Sum of plane[y * w + x] over the window [y0, y1) x [x0, x1), in row-major order.
template <class T, class I>
DINO_HD inline T window_sum(const T* plane, I w, I y0, I y1, I x0, I x1) {
  T s = 0;
  for (I y = y0; y < y1; ++y)
    for (I x = x0; x < x1; ++x) s += plane[y * w + x];
  return s;
}
// Max pooling's winner in the window [y0, y1) x [x0, x1) (non-empty), as torch's CPU kernel: the scan starts
// from -inf at the first element and goes row-major, so ties go to the first maximum. Returns y * w + x.
template <class T, class I>
DINO_HD inline I window_argmax(const T* plane, I w, I y0, I y1, I x0, I x1) {
  I best_i = y0 * w + x0;
  T best = -T(INFINITY);
  for (I y = y0; y < y1; ++y)
    for (I x = x0; x < x1; ++x) {
      const T v = plane[y * w + x];
      if (max_pool_takes(v, best)) {
        best = v;
        best_i = y * w + x;
      }
    }
  return best_i;
}

}  // namespace dino::math

// CUDA statistics and element maps of BatchNorm and GroupNorm (twin of cpu/norm.hpp). Reductions run one
// block per channel (BatchNorm) or per (sample, group) / (sample, channel) (GroupNorm) with the fixed tree of
// block_sum, so results are reproducible run to run; element maps are grid-stride functors.
#pragma once
#include "dino/core/math.hpp"
#include "dino/cuda/blas.cuh"

namespace dino::cuda {

// Element i of channel ch in x [N, C, S], i running over the channel's N * S values.
__device__ inline Index bn_offset(Index i, Index ch, Index c, Index s) { return ((i / s) * c + ch) * s + i % s; }

template <class T>
__global__ void bn_stats_kernel(const T* x, Index n, Index c, Index s, T eps, T momentum, T* running_mean,
                                T* running_var, T* mean, T* invstd) {
  __shared__ T shared[kReduceThreads];
  const Index ch = blockIdx.x, count = n * s;
  // Shifted by the channel's first value, then a second pass over squared deviations, as the CPU twin.
  const T shift = x[bn_offset(0, ch, c, s)];
  T acc = 0;
  for (Index i = threadIdx.x; i < count; i += blockDim.x) acc += x[bn_offset(i, ch, c, s)] - shift;
  const T mu = shift + block_sum(acc, shared) / T(count);
  acc = 0;
  for (Index i = threadIdx.x; i < count; i += blockDim.x) {
    const T d = x[bn_offset(i, ch, c, s)] - mu;
    acc += d * d;
  }
  const T var_sum = block_sum(acc, shared);
  if (threadIdx.x == 0) {
    mean[ch] = mu;
    invstd[ch] = math::inv_std(var_sum / T(count), eps);
    if (running_mean != nullptr) {
      const T unbiased = count > 1 ? var_sum / T(count - 1) : var_sum;
      running_mean[ch] = math::running_update(running_mean[ch], mu, momentum);
      running_var[ch] = math::running_update(running_var[ch], unbiased, momentum);
    }
  }
}

template <class T>
struct BnRunningStatsFn {
  const T *running_mean, *running_var;
  T eps;
  T *mean, *invstd;
  __device__ void operator()(Index j) const {
    mean[j] = running_mean[j];
    invstd[j] = math::inv_std(running_var[j], eps);
  }
};

// Element map over [N, C, S] with per-channel statistics (BatchNorm: group = channel, cg = 1, g = C) or
// per-(sample, group) statistics (GroupNorm: stats index (n C + ch) / cg).
template <class T>
struct NormAffineFn {
  const T* x;
  Index c, s, cg;
  bool per_sample;
  const T *mean, *invstd, *weight, *bias;
  T* y;
  __device__ void operator()(Index i) const {
    const Index r = i / s, ch = r % c, q = per_sample ? r / cg : ch;
    const T w = weight ? weight[ch] : T(1), b = bias ? bias[ch] : T(0);
    y[i] = math::norm_affine(x[i], mean[q], invstd[q], w, b);
  }
};

template <class T>
__global__ void bn_backward_reduce_kernel(const T* dy, const T* x, Index n, Index c, Index s, const T* mean,
                                          const T* invstd, T* sum_dy, T* sum_dy_xhat, T* dweight, T* dbias) {
  __shared__ T shared[kReduceThreads];
  const Index ch = blockIdx.x, count = n * s;
  const T mu = mean[ch], is = invstd[ch];
  T a = 0, b = 0;
  for (Index i = threadIdx.x; i < count; i += blockDim.x) {
    const Index k = bn_offset(i, ch, c, s);
    a += dy[k];
    b += dy[k] * math::norm_xhat(x[k], mu, is);
  }
  a = block_sum(a, shared);
  b = block_sum(b, shared);
  if (threadIdx.x == 0) {
    sum_dy[ch] = a;
    sum_dy_xhat[ch] = b;
    if (dbias != nullptr) dbias[ch] += a;
    if (dweight != nullptr) dweight[ch] += b;
  }
}

template <class T>
struct BnBackwardInputFn {
  const T *dy, *x;
  Index c, s;
  const T *mean, *invstd, *weight, *sum_dy, *sum_dy_xhat;
  bool batch_stats;
  T inv_count;
  T* dx;
  __device__ void operator()(Index i) const {
    const Index ch = (i / s) % c;
    const T w = weight ? weight[ch] : T(1);
    const T mg = batch_stats ? w * sum_dy[ch] * inv_count : T(0);
    const T mgx = batch_stats ? w * sum_dy_xhat[ch] * inv_count : T(0);
    const T is = invstd[ch];
    dx[i] = math::norm_grad(w * dy[i], math::norm_xhat(x[i], mean[ch], is), is, mg, mgx);
  }
};

// One block per (sample, group): its C/G * S values are contiguous.
template <class T>
__global__ void gn_stats_kernel(const T* x, Index m, T eps, T* mean, T* invstd) {
  __shared__ T shared[kReduceThreads];
  const Index q = blockIdx.x;
  const T* xg = x + q * m;
  const T shift = xg[0];
  T acc = 0;
  for (Index i = threadIdx.x; i < m; i += blockDim.x) acc += xg[i] - shift;
  const T mu = shift + block_sum(acc, shared) / T(m);
  acc = 0;
  for (Index i = threadIdx.x; i < m; i += blockDim.x) {
    const T d = xg[i] - mu;
    acc += d * d;
  }
  const T var_sum = block_sum(acc, shared);
  if (threadIdx.x == 0) {
    mean[q] = mu;
    invstd[q] = math::inv_std(var_sum / T(m), eps);
  }
}

// One block per (sample, channel): its S values are contiguous.
template <class T>
__global__ void gn_backward_reduce_kernel(const T* dy, const T* x, Index s, Index cg, const T* mean,
                                          const T* invstd, T* sum_dy, T* sum_dy_xhat) {
  __shared__ T shared[kReduceThreads];
  const Index r = blockIdx.x, q = r / cg, off = r * s;
  const T mu = mean[q], is = invstd[q];
  T a = 0, b = 0;
  for (Index k = threadIdx.x; k < s; k += blockDim.x) {
    a += dy[off + k];
    b += dy[off + k] * math::norm_xhat(x[off + k], mu, is);
  }
  a = block_sum(a, shared);
  b = block_sum(b, shared);
  if (threadIdx.x == 0) {
    sum_dy[r] = a;
    sum_dy_xhat[r] = b;
  }
}

// One block per (sample, group): the group means of g and g x^ from the per-channel sums, then the elements.
template <class T>
__global__ void gn_backward_input_kernel(const T* dy, const T* x, Index g, Index s, Index cg, const T* mean,
                                         const T* invstd, const T* weight, const T* sum_dy, const T* sum_dy_xhat,
                                         T* dx) {
  __shared__ T shared[kReduceThreads];
  const Index q = blockIdx.x, r0 = q * cg, c0 = (q % g) * cg, m = cg * s;
  T a = 0, b = 0;
  for (Index j = threadIdx.x; j < cg; j += blockDim.x) {
    const T w = weight ? weight[c0 + j] : T(1);
    a += w * sum_dy[r0 + j];
    b += w * sum_dy_xhat[r0 + j];
  }
  const T inv_count = T(1) / T(m);
  const T mg = block_sum(a, shared) * inv_count;
  const T mgx = block_sum(b, shared) * inv_count;
  const T mu = mean[q], is = invstd[q];
  const Index off = r0 * s;
  for (Index i = threadIdx.x; i < m; i += blockDim.x) {
    const Index j = i / s;
    const T w = weight ? weight[c0 + j] : T(1);
    dx[off + i] = math::norm_grad(w * dy[off + i], math::norm_xhat(x[off + i], mu, is), is, mg, mgx);
  }
}

struct NormOps {
  // As Cpu::batch_norm_stats: mean, invstd [C] of x [N, C, S] (untouched when N S = 0); running stats
  // updated when non-null.
  template <class T>
  static void batch_norm_stats(Ctx<Cuda>&, const T* x, Index n, Index c, Index s, T eps, T momentum, T* running_mean,
                               T* running_var, T* mean, T* invstd) {
    if (c == 0 || n * s == 0) return;
    bn_stats_kernel<<<static_cast<unsigned>(c), kReduceThreads>>>(x, n, c, s, eps, momentum, running_mean,
                                                                  running_var, mean, invstd);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  // As Cpu::batch_norm_running_stats.
  template <class T>
  static void batch_norm_running_stats(Ctx<Cuda>&, const T* running_mean, const T* running_var, Index c, T eps,
                                       T* mean, T* invstd) {
    for_each(c, BnRunningStatsFn<T>{running_mean, running_var, eps, mean, invstd});
  }
  // As Cpu::batch_norm_forward: y overwritten; weight, bias may be null.
  template <class T>
  static void batch_norm_forward(Ctx<Cuda>&, const T* x, Index n, Index c, Index s, const T* mean, const T* invstd,
                                 const T* weight, const T* bias, T* y) {
    for_each(n * c * s, NormAffineFn<T>{x, c, s, 1, false, mean, invstd, weight, bias, y});
  }
  // As Cpu::batch_norm_backward_reduce: sums overwritten, added into dweight, dbias when non-null.
  template <class T>
  static void batch_norm_backward_reduce(Ctx<Cuda>&, const T* dy, const T* x, Index n, Index c, Index s,
                                         const T* mean, const T* invstd, T* sum_dy, T* sum_dy_xhat, T* dweight,
                                         T* dbias) {
    if (c == 0) return;
    bn_backward_reduce_kernel<<<static_cast<unsigned>(c), kReduceThreads>>>(dy, x, n, c, s, mean, invstd, sum_dy,
                                                                            sum_dy_xhat, dweight, dbias);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  // As Cpu::batch_norm_backward_input: dx overwritten.
  template <class T>
  static void batch_norm_backward_input(Ctx<Cuda>&, const T* dy, const T* x, Index n, Index c, Index s,
                                        const T* mean, const T* invstd, const T* weight, const T* sum_dy,
                                        const T* sum_dy_xhat, bool batch_stats, T* dx) {
    const T inv_count = T(1) / T(n * s);
    for_each(n * c * s,
             BnBackwardInputFn<T>{dy, x, c, s, mean, invstd, weight, sum_dy, sum_dy_xhat, batch_stats, inv_count, dx});
  }
  // As Cpu::group_norm_stats: mean, invstd [N, G] overwritten (untouched when S = 0).
  template <class T>
  static void group_norm_stats(Ctx<Cuda>&, const T* x, Index n, Index c, Index s, Index g, T eps, T* mean,
                               T* invstd) {
    if (n * g == 0 || c * s == 0) return;
    gn_stats_kernel<<<static_cast<unsigned>(n * g), kReduceThreads>>>(x, (c / g) * s, eps, mean, invstd);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  // As Cpu::group_norm_forward: y overwritten; weight, bias may be null.
  template <class T>
  static void group_norm_forward(Ctx<Cuda>&, const T* x, Index n, Index c, Index s, Index g, const T* mean,
                                 const T* invstd, const T* weight, const T* bias, T* y) {
    for_each(n * c * s, NormAffineFn<T>{x, c, s, c / g, true, mean, invstd, weight, bias, y});
  }
  // As Cpu::group_norm_backward_reduce: sum_dy, sum_dy_xhat [N, C] overwritten.
  template <class T>
  static void group_norm_backward_reduce(Ctx<Cuda>&, const T* dy, const T* x, Index n, Index c, Index s, Index g,
                                         const T* mean, const T* invstd, T* sum_dy, T* sum_dy_xhat) {
    if (n * c == 0) return;
    gn_backward_reduce_kernel<<<static_cast<unsigned>(n * c), kReduceThreads>>>(dy, x, s, c / g, mean, invstd,
                                                                                sum_dy, sum_dy_xhat);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  // As Cpu::group_norm_backward_input: dx overwritten.
  template <class T>
  static void group_norm_backward_input(Ctx<Cuda>&, const T* dy, const T* x, Index n, Index c, Index s, Index g,
                                        const T* mean, const T* invstd, const T* weight, const T* sum_dy,
                                        const T* sum_dy_xhat, T* dx) {
    if (n * g == 0) return;
    gn_backward_input_kernel<<<static_cast<unsigned>(n * g), kReduceThreads>>>(dy, x, g, s, c / g, mean, invstd,
                                                                               weight, sum_dy, sum_dy_xhat, dx);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
};

}  // namespace dino::cuda

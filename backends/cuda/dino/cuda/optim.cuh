// CUDA optimizer updates and double-precision sums of squares (twin of backends/cpu/dino/cpu/optim.hpp): the
// rules of dino/optim/update_rules.hpp in grid-stride kernels, and a fixed-tree reduction per chunk.
#pragma once
#include <cstddef>
#include <vector>

#include "dino/core/math.hpp"
#include "dino/cuda/launch.cuh"
#include "dino/optim/update_rules.hpp"

namespace dino::cuda {

template <class T>
struct AdamWFn {
  T *p, *m, *v;
  const T* g;
  optim::AdamFactors<T> f;
  __device__ void operator()(Index i) const { optim::adamw_element(p[i], g[i], m[i], v[i], f); }
};
template <class T>
struct AdamFn {
  T *p, *m, *v;
  const T* g;
  optim::AdamFactors<T> f;
  __device__ void operator()(Index i) const { optim::adam_element(p[i], g[i], m[i], v[i], f); }
};
template <class T>
struct SgdMomentumFn {
  T *p, *buf;
  const T* g;
  bool first;
  optim::SgdFactors<T> f;
  __device__ void operator()(Index i) const { optim::sgd_momentum_element(p[i], g[i], buf[i], first, f); }
};
template <class T>
struct SgdFn {
  T* p;
  const T* g;
  optim::SgdFactors<T> f;
  __device__ void operator()(Index i) const { optim::sgd_element(p[i], g[i], f); }
};

constexpr int kSquaresThreads = 256;

// Block t: partial[t] = sum of x[i]^2 over [begin[t], end[t]) in double, by a fixed tree (reproducible).
template <class T>
__global__ void chunk_squares_kernel(const T* x, const Index* begin, const Index* end, double* partial) {
  __shared__ double shared[kSquaresThreads];
  const Index b = begin[blockIdx.x], e = end[blockIdx.x];
  double s = 0;
  for (Index i = b + threadIdx.x; i < e; i += kSquaresThreads) {
    const double v = static_cast<double>(x[i]);
    s += v * v;
  }
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int w = kSquaresThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) shared[threadIdx.x] += shared[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

struct OptimOps {
  // Elements per partial sum of sum_squares_f64 (one block each).
  static constexpr Index kSquaresChunk = 4096;

  template <class T>
  static void adamw_update(Ctx<Cuda>&, T* p, const T* g, T* m, T* v, Index n, const optim::AdamFactors<T>& f) {
    for_each(n, AdamWFn<T>{p, m, v, g, f});
  }
  template <class T>
  static void adam_update(Ctx<Cuda>&, T* p, const T* g, T* m, T* v, Index n, const optim::AdamFactors<T>& f) {
    for_each(n, AdamFn<T>{p, m, v, g, f});
  }
  template <class T>
  static void sgd_update(Ctx<Cuda>&, T* p, const T* g, T* buf, bool first, Index n, const optim::SgdFactors<T>& f) {
    if (buf)
      for_each(n, SgdMomentumFn<T>{p, buf, g, first, f});
    else
      for_each(n, SgdFn<T>{p, g, f});
  }

  // out[s] = sum of x[i]^2 over [offsets[s], offsets[s] + counts[s]) (device x; host offsets, counts, out):
  // one block per chunk of kSquaresChunk, the chunk partials added on the host in index order.
  template <class T>
  static void sum_squares_f64_segments(Ctx<Cuda>& ctx, const T* x, const Index* offsets, const Index* counts, Index k,
                                       double* out) {
    static_assert(sizeof(Index) == sizeof(double), "task bounds share the double scratch buffer");
    std::vector<Index> bounds;  // begin of every task, then end of every task
    for (Index s = 0; s < k; ++s)
      for (Index i0 = 0; i0 < counts[s]; i0 += kSquaresChunk) bounds.push_back(offsets[s] + i0);
    const Index tasks = static_cast<Index>(bounds.size());
    for (Index s = 0; s < k; ++s)
      for (Index i0 = 0; i0 < counts[s]; i0 += kSquaresChunk)
        bounds.push_back(offsets[s] + (counts[s] - i0 < kSquaresChunk ? counts[s] : i0 + kSquaresChunk));
    for (Index s = 0; s < k; ++s) out[s] = 0;
    if (tasks == 0) return;
    double* partial = ctx.scratch<double>(3 * tasks);
    Index* dev_bounds = reinterpret_cast<Index*>(partial + tasks);
    DINO_CUDA_CHECK(cudaMemcpy(dev_bounds, bounds.data(), bounds.size() * sizeof(Index), cudaMemcpyHostToDevice));
    chunk_squares_kernel<<<static_cast<unsigned>(tasks), kSquaresThreads>>>(x, dev_bounds, dev_bounds + tasks, partial);
    DINO_CUDA_CHECK(cudaGetLastError());
    std::vector<double> h(static_cast<std::size_t>(tasks));
    DINO_CUDA_CHECK(cudaMemcpy(h.data(), partial, h.size() * sizeof(double), cudaMemcpyDeviceToHost));
    std::size_t t = 0;
    for (Index s = 0; s < k; ++s)
      for (Index i0 = 0; i0 < counts[s]; i0 += kSquaresChunk) out[s] += h[t++];
  }
  template <class T>
  static double sum_squares_f64(Ctx<Cuda>& ctx, const T* x, Index n) {
    const Index offset = 0;
    double out = 0;
    sum_squares_f64_segments(ctx, x, &offset, &n, 1, &out);
    return out;
  }
};

}  // namespace dino::cuda

// CUDA L2 normalisation of rows (twin of cpu/normalize.hpp): one block per row, a fixed reduction tree.
#pragma once
#include "dino/core/math.hpp"
#include "dino/cuda/blas.cuh"

namespace dino::cuda {

template <class T>
__global__ void l2_normalize_fwd_kernel(const T* x, Index cols, T eps, T* y, T* norms) {
  __shared__ T shared[kReduceThreads];
  const Index r = blockIdx.x;
  const T* xr = x + r * cols;
  T s = 0;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j] * xr[j];
  const T n = math::sqrt_(block_sum(s, shared));
  if (threadIdx.x == 0) norms[r] = n;
  const T d = math::max_(n, eps);
  T* yr = y + r * cols;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] / d;
}

// In-place safe (dx may alias dy): the dot product is complete before any write.
template <class T>
__global__ void l2_normalize_bwd_kernel(const T* y, const T* norms, const T* dy, Index cols, T eps, bool detach,
                                        T* dx) {
  __shared__ T shared[kReduceThreads];
  const Index r = blockIdx.x;
  const T* yr = y + r * cols;
  const T* dyr = dy + r * cols;
  const T n = norms[r];
  const T d = math::max_(n, eps);
  T s = 0;
  if (!detach && n >= eps)
    for (Index j = threadIdx.x; j < cols; j += blockDim.x) s += yr[j] * dyr[j];
  const T dot = block_sum(s, shared);
  T* dxr = dx + r * cols;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) dxr[j] = (dyr[j] - yr[j] * dot) / d;
}

struct NormalizeOps {
  template <class T>
  static void l2_normalize_rows_forward(Ctx<Cuda>&, const T* x, Index rows, Index cols, T eps, T* y, T* norms) {
    if (rows == 0) return;
    l2_normalize_fwd_kernel<<<static_cast<unsigned>(rows), kReduceThreads>>>(x, cols, eps, y, norms);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  template <class T>
  static void l2_normalize_rows_backward(Ctx<Cuda>&, const T* y, const T* norms, const T* dy, Index rows,
                                         Index cols, T eps, bool detach_norm, T* dx) {
    if (rows == 0) return;
    l2_normalize_bwd_kernel<<<static_cast<unsigned>(rows), kReduceThreads>>>(y, norms, dy, cols, eps, detach_norm, dx);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
};

}  // namespace dino::cuda

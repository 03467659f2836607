// Kernel launch helpers: grid-stride loops over a functor, with the launch error checked.
#pragma once
#include "dino/core/shape.hpp"

namespace dino::cuda {

constexpr int kThreads = 256;

inline int blocks_for(Index n, int threads = kThreads) {
  const Index b = (n + threads - 1) / threads;
  return static_cast<int>(b < 1 ? 1 : (b > 65535 * 4 ? 65535 * 4 : b));
}

template <class F>
__global__ void map_kernel(Index n, F f) {
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<Index>(blockDim.x) * gridDim.x)
    f(i);
}

// for (i in [0, n)) f(i) on the device; f is a functor with a __device__ operator()(Index).
template <class F>
void for_each(Index n, const F& f) {
  if (n <= 0) return;
  map_kernel<<<blocks_for(n), kThreads>>>(n, f);
  DINO_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dino::cuda

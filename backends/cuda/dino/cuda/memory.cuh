// CUDA memory: device allocations, host/device copies and fills (twin of cpu/memory.hpp).
#pragma once
#include "dino/cuda/launch.cuh"

namespace dino::cuda {

template <class T>
struct FillFn {
  T* dst;
  T value;
  __device__ void operator()(Index i) const { dst[i] = value; }
};

struct MemoryOps {
  template <class T>
  static T* allocate(Index n) {
    if (n == 0) return nullptr;
    void* p = nullptr;
    DINO_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(n) * sizeof(T)));
    return static_cast<T*>(p);
  }
  static void deallocate(void* p) { cudaFree(p); }  // no throw from destructors

  template <class T>
  static void copy_from_host(T* dst, const T* src, Index n) {
    if (n) DINO_CUDA_CHECK(cudaMemcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyHostToDevice));
  }
  template <class T>
  static void copy_to_host(T* dst, const T* src, Index n) {
    if (n) DINO_CUDA_CHECK(cudaMemcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost));
  }
  template <class T>
  static void copy(T* dst, const T* src, Index n) {
    if (n) DINO_CUDA_CHECK(cudaMemcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T), cudaMemcpyDeviceToDevice));
  }
  template <class T>
  static void fill(T* dst, Index n, T value) {
    for_each(n, FillFn<T>{dst, value});
  }
};

}  // namespace dino::cuda

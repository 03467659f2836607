// The CUDA backend: the CUDA runtime and cuBLAS live only under backends/cuda. Including this header (from a
// .cu file compiled by nvcc) defines dino::Cuda and brings in the whole library.
#pragma once
#ifndef __CUDACC__
#error "<dino/cuda.hpp> holds CUDA kernels: include it from a .cu file compiled by nvcc"
#endif
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "dino/core/backend.hpp"
#include "dino/core/context.hpp"
#include "dino/core/error.hpp"
#include "dino/core/shape.hpp"

namespace dino {

template <>
struct backend_defined<Cuda> : std::true_type {};

namespace cuda {
// CUDA and cuBLAS status codes become dino::Error naming the call that failed.
inline void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) fail("CUDA error in ", call, ": ", cudaGetErrorString(status));
}
inline void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS) fail("cuBLAS error in ", call, ": status ", static_cast<int>(status));
}
}  // namespace cuda

#define DINO_CUDA_CHECK(call) ::dino::cuda::check((call), #call)

// The CUDA context: the cuBLAS handle and a device scratch workspace. Work runs on the legacy default stream,
// so host transfers and kernels are ordered without explicit synchronisation.
template <>
struct Ctx<Cuda> : CtxBase {
  Ctx() { DINO_CUDA_CHECK(cublasCreate(&blas)); }
  ~Ctx() {
    if (scratch_) cudaFree(scratch_);
    if (blas) cublasDestroy(blas);
  }
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;

  // A device scratch buffer of at least n elements, valid until the next call; grows, never shrinks.
  template <class T>
  T* scratch(Index n) {
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    if (bytes > scratch_bytes_) {
      if (scratch_) DINO_CUDA_CHECK(cudaFree(scratch_));
      scratch_ = nullptr;
      DINO_CUDA_CHECK(cudaMalloc(&scratch_, bytes));
      scratch_bytes_ = bytes;
    }
    return static_cast<T*>(scratch_);
  }
  // Waits for the queued work (timing, host reads of results).
  void synchronize() { DINO_CUDA_CHECK(cudaDeviceSynchronize()); }

  cublasHandle_t blas = nullptr;

 private:
  void* scratch_ = nullptr;
  std::size_t scratch_bytes_ = 0;
};

}  // namespace dino

#include "dino/cuda/launch.cuh"
#include "dino/cuda/memory.cuh"
#include "dino/cuda/blas.cuh"
#include "dino/cuda/elementwise.cuh"
#include "dino/cuda/conv.cuh"
#include "dino/cuda/pooling.cuh"
#include "dino/cuda/norm.cuh"
#include "dino/cuda/normalize.cuh"
#include "dino/cuda/optim.cuh"
#include "dino/cuda/rowwise.cuh"

namespace dino {

// The backend type: a struct of static operations, one base per op family (backends/cuda/dino/cuda/*.cuh,
// each the twin of the CPU file of the same name).
struct Cuda : cuda::MemoryOps, cuda::BlasOps, cuda::ElementwiseOps, cuda::ConvOps, cuda::PoolingOps, cuda::NormOps,
              cuda::NormalizeOps, cuda::OptimOps, cuda::RowwiseOps {
  static constexpr const char* name = "cuda";
  // Number of visible devices; 0 when there is none or no driver.
  static int device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error of a missing driver
      return 0;
    }
    return n;
  }
};

}  // namespace dino

#include "dino/dino.hpp"

// CUDA GEMM (cuBLAS) and row/column reductions (twin of cpu/blas.hpp). Reductions use a fixed tree per
// block, so results are reproducible run to run.
#pragma once
#include <type_traits>
#include <vector>

#include "dino/cuda/launch.cuh"

namespace dino::cuda {

// Fixed chunk per block of the two-pass sum of squares.
constexpr int kReduceThreads = 256;

// out[j] = beta * out[j] + sum_i x[i, j]; a block handles 32 columns, its 8 rows of threads stride the rows.
template <class T>
__global__ void sum_rows_kernel(const T* x, Index rows, Index cols, T beta, T* out) {
  __shared__ T part[8][33];
  const Index j = blockIdx.x * 32 + threadIdx.x;
  T s = 0;
  if (j < cols)
    for (Index i = threadIdx.y; i < rows; i += 8) s += x[i * cols + j];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    T total = 0;
    for (int r = 0; r < 8; ++r) total += part[r][threadIdx.x];
    out[j] = (beta == T(0) ? T(0) : beta * out[j]) + total;
  }
}

template <class T>
__device__ T block_sum(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const T r = shared[0];
  __syncthreads();
  return r;
}

template <class T>
__global__ void sum_squares_kernel(const T* x, Index n, T* partial) {
  __shared__ T shared[kReduceThreads];
  T s = 0;
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<Index>(blockDim.x) * gridDim.x)
    s += x[i] * x[i];
  const T total = block_sum(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

template <class T>
struct AddRowVectorFn {
  T* y;
  const T* v;
  Index cols;
  __device__ void operator()(Index i) const { y[i] += v[i % cols]; }
};

struct BlasOps {
  // Row-major C[m, n] = alpha * op(A) * op(B) + beta * C, as Cpu::gemm. cuBLAS is column-major, so it
  // computes C^T = op(B)^T op(A)^T on the same memory.
  template <class T>
  static void gemm(Ctx<Cuda>& ctx, bool ta, bool tb, Index m, Index n, Index k, T alpha, const T* a, Index lda,
                   const T* b, Index ldb, T beta, T* c, Index ldc) {
    if (m == 0 || n == 0) return;
    const auto opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const auto opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
    if constexpr (std::is_same_v<T, float>)
      DINO_CUDA_CHECK(cublasSgemm(ctx.blas, opb, opa, N, M, K, &alpha, b, static_cast<int>(ldb), a,
                                  static_cast<int>(lda), &beta, c, static_cast<int>(ldc)));
    else
      DINO_CUDA_CHECK(cublasDgemm(ctx.blas, opb, opa, N, M, K, &alpha, b, static_cast<int>(ldb), a,
                                  static_cast<int>(lda), &beta, c, static_cast<int>(ldc)));
  }

  template <class T>
  static void sum_rows(Ctx<Cuda>&, const T* x, Index rows, Index cols, T beta, T* out) {
    if (cols == 0) return;
    const dim3 threads(32, 8);
    sum_rows_kernel<<<static_cast<unsigned>((cols + 31) / 32), threads>>>(x, rows, cols, beta, out);
    DINO_CUDA_CHECK(cudaGetLastError());
  }

  template <class T>
  static void add_row_vector(Ctx<Cuda>&, T* y, Index rows, Index cols, const T* v) {
    for_each(rows * cols, AddRowVectorFn<T>{y, v, cols});
  }

  // sum_i x[i]^2: per-block partial sums, then the partials added on the host in block order.
  template <class T>
  static T sum_squares(Ctx<Cuda>& ctx, const T* x, Index n) {
    if (n == 0) return T(0);
    const int blocks = blocks_for(n, kReduceThreads) < 1024 ? blocks_for(n, kReduceThreads) : 1024;
    T* partial = ctx.scratch<T>(blocks);
    sum_squares_kernel<<<blocks, kReduceThreads>>>(x, n, partial);
    DINO_CUDA_CHECK(cudaGetLastError());
    std::vector<T> h(static_cast<std::size_t>(blocks));
    DINO_CUDA_CHECK(cudaMemcpy(h.data(), partial, h.size() * sizeof(T), cudaMemcpyDeviceToHost));
    T total = 0;
    for (T p : h) total += p;
    return total;
  }
};

}  // namespace dino::cuda

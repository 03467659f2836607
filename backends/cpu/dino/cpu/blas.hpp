// CPU GEMM and row/column reductions. GEMM goes to OpenBLAS (cblas) when DINO_USE_OPENBLAS is defined,
// else to Eigen's product kernels; both run on the OpenMP pool.
#pragma once
// GCC 12 reports a false maybe-uninitialized inside its own AVX-512 intrinsics when inlining Eigen's GEMM.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "dino/cpu/parallel.hpp"

#ifdef DINO_USE_OPENBLAS
#include <cblas.h>
#endif

namespace dino {

inline void Ctx<Cpu>::set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
#ifdef DINO_USE_OPENBLAS
  openblas_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

inline int Ctx<Cpu>::threads() const {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace cpu {

// Fixed chunk size of deterministic reductions: partial sums over chunks in index order, whatever the
// thread count.
constexpr Index kReduceChunk = 4096;

struct BlasOps {
  // Row-major C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, op = transpose when ta / tb.
  // lda, ldb, ldc are row strides of the stored (untransposed) matrices.
  template <class T>
  static void gemm(Ctx<Cpu>&, bool ta, bool tb, Index m, Index n, Index k, T alpha, const T* a, Index lda,
                   const T* b, Index ldb, T beta, T* c, Index ldc) {
    if (m == 0 || n == 0) return;
#ifdef DINO_USE_OPENBLAS
    const auto opa = ta ? CblasTrans : CblasNoTrans;
    const auto opb = tb ? CblasTrans : CblasNoTrans;
    const auto M = static_cast<blasint>(m), N = static_cast<blasint>(n), K = static_cast<blasint>(k);
    if constexpr (std::is_same_v<T, float>)
      cblas_sgemm(CblasRowMajor, opa, opb, M, N, K, alpha, a, static_cast<blasint>(lda), b,
                  static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
    else
      cblas_dgemm(CblasRowMajor, opa, opb, M, N, K, alpha, a, static_cast<blasint>(lda), b,
                  static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
#else
    eigen_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
  }

  // The Eigen kernel, also used by the benchmarks to compare against OpenBLAS.
  template <class T>
  static void eigen_gemm(bool ta, bool tb, Index m, Index n, Index k, T alpha, const T* a, Index lda,
                         const T* b, Index ldb, T beta, T* c, Index ldc) {
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using CMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
    using MMap = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
    MMap C(c, m, n, Eigen::OuterStride<>(ldc));
    if (beta == T(0))
      C.setZero();
    else if (beta != T(1))
      C *= beta;
    if (k == 0) return;
    CMap A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
    CMap Bm(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
    if (!ta && !tb) C.noalias() += alpha * A * Bm;
    if (ta && !tb) C.noalias() += alpha * A.transpose() * Bm;
    if (!ta && tb) C.noalias() += alpha * A * Bm.transpose();
    if (ta && tb) C.noalias() += alpha * A.transpose() * Bm.transpose();
  }

  // out[j] = beta * out[j] + sum_i x[i, j] for x [rows, cols] (a bias gradient; beta 1 accumulates).
  // Each column is summed in row order, so the result does not depend on the thread count.
  template <class T>
  static void sum_rows(Ctx<Cpu>&, const T* x, Index rows, Index cols, T beta, T* out) {
    // Blocks of columns in parallel; inside a block, rows in order (vectorised across columns).
    constexpr Index kBlock = 256;
    const Index n_blocks = (cols + kBlock - 1) / kBlock;
    parallel_for(
        n_blocks,
        [=](Index blk) {
          const Index j0 = blk * kBlock, j1 = std::min(cols, j0 + kBlock);
          T acc[kBlock];
          for (Index j = j0; j < j1; ++j) acc[j - j0] = T(0);
          for (Index i = 0; i < rows; ++i) {
            const T* row = x + i * cols;
            for (Index j = j0; j < j1; ++j) acc[j - j0] += row[j];
          }
          for (Index j = j0; j < j1; ++j) out[j] = (beta == T(0) ? T(0) : beta * out[j]) + acc[j - j0];
        },
        rows * cols >= kParallelGrain ? 2 : n_blocks + 1);
  }

  // y[i, j] += v[j] for y [rows, cols].
  template <class T>
  static void add_row_vector(Ctx<Cpu>&, T* y, Index rows, Index cols, const T* v) {
    parallel_for(
        rows,
        [=](Index i) {
          T* row = y + i * cols;
          for (Index j = 0; j < cols; ++j) row[j] += v[j];
        },
        std::max<Index>(1, kParallelGrain / std::max<Index>(cols, 1)));
  }

  // sum_i x[i]^2, over fixed chunks combined in order (thread-count independent).
  template <class T>
  static T sum_squares(Ctx<Cpu>&, const T* x, Index n) {
    const Index n_chunks = (n + kReduceChunk - 1) / kReduceChunk;
    std::vector<T> partial(static_cast<std::size_t>(n_chunks));
    parallel_for(
        n_chunks,
        [&](Index c) {
          const Index i0 = c * kReduceChunk, i1 = std::min(n, i0 + kReduceChunk);
          T s = 0;
          for (Index i = i0; i < i1; ++i) s += x[i] * x[i];
          partial[static_cast<std::size_t>(c)] = s;
        },
        4);
    T total = 0;
    for (T p : partial) total += p;
    return total;
  }
};

}  // namespace cpu
}  // namespace dino

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// CUDA row-wise softmax, log-softmax, entropies and the multicrop losses' row terms (twin of
// backends/cpu/dino/cpu/rowwise.hpp): one block per row with a fixed shared-memory reduction tree, so results
// are reproducible run to run; elementwise maps use the grid-stride helper.
#pragma once
#include "dino/core/rowwise_math.hpp"
#include "dino/cuda/blas.cuh"

namespace dino::cuda {

// The NaN-propagating maximum over the block (every thread gets it); the tree is fixed.
template <class T>
__device__ T block_max_nan(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s)
      shared[threadIdx.x] = math::max_nan(shared[threadIdx.x], shared[threadIdx.x + s]);
    __syncthreads();
  }
  const T r = shared[0];
  __syncthreads();
  return r;
}

template <class T>
__global__ void log_softmax_rows_kernel(const T* x, Index cols, T* logp, T* entropy) {
  __shared__ T shared[kReduceThreads];
  const Index r = blockIdx.x;
  const T* xr = x + r * cols;
  T* lr = logp + r * cols;
  T m = -T(INFINITY);
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) m = math::max_nan(m, xr[j]);
  const T mx = block_max_nan(m, shared);
  T s = 0;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) s += math::softmax_term(xr[j], mx);
  const T log_sum = math::log_(block_sum(s, shared));
  T h = 0;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) {
    const T l = math::log_softmax_value(xr[j], mx, log_sum);
    lr[j] = l;
    h += math::entropy_term(l);
  }
  if (entropy) {
    const T total = block_sum(h, shared);
    if (threadIdx.x == 0) entropy[r] = total;
  }
}

template <class T>
__global__ void cross_entropy_rows_kernel(const T* q, const T* logp, Index cols, T* out) {
  __shared__ T shared[kReduceThreads];
  const Index r = blockIdx.x;
  const T* qr = q + r * cols;
  const T* lr = logp + r * cols;
  T s = 0;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) s += math::cross_entropy_term(qr[j], lr[j]);
  const T total = block_sum(s, shared);
  if (threadIdx.x == 0) out[r] = total;
}

template <class T>
__global__ void mse_rows_kernel(const T* t, const T* s, Index cols, T* out) {
  __shared__ T shared[kReduceThreads];
  const Index r = blockIdx.x;
  const T* tr = t + r * cols;
  const T* sr = s + r * cols;
  T a = 0;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) a += math::squared_diff(tr[j], sr[j]);
  const T total = block_sum(a, shared);
  if (threadIdx.x == 0) out[r] = total / static_cast<T>(cols);
}

// In-place safe (dx may alias g): the row sum is complete before any write.
template <class T>
__global__ void log_softmax_backward_rows_kernel(const T* logp, const T* g, Index cols, T* dx) {
  __shared__ T shared[kReduceThreads];
  const Index r = blockIdx.x;
  const T* lr = logp + r * cols;
  const T* gr = g + r * cols;
  T* dr = dx + r * cols;
  T s = 0;
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) s += gr[j];
  const T sum_g = block_sum(s, shared);
  for (Index j = threadIdx.x; j < cols; j += blockDim.x) dr[j] = math::log_softmax_grad(gr[j], lr[j], sum_g);
}

template <class T>
struct ExpFn {
  const T* logp;
  T* p;
  __device__ void operator()(Index i) const { p[i] = math::exp_(logp[i]); }
};
template <class T>
struct OneHotFn {
  const T* labels;
  Index cols;
  T* q;
  __device__ void operator()(Index i) const { q[i] = i % cols == static_cast<Index>(labels[i / cols]) ? T(1) : T(0); }
};
template <class T>
struct EntropyGradFn {
  const T *logp, *entropy;
  Index cols;
  T w;
  T* dx;
  __device__ void operator()(Index i) const { dx[i] = math::entropy_grad(logp[i], entropy[i / cols], w); }
};
template <class T>
struct SquaredDiffGradFn {
  const T *t, *s;
  T coef;
  T* dx;
  __device__ void operator()(Index i) const { dx[i] += math::squared_diff_grad(t[i], s[i], coef); }
};
template <class T>
struct CenterLogitFn {
  const T *proj, *cent;
  Index cols;
  T temp;
  T* logits;
  __device__ void operator()(Index i) const { logits[i] = math::center_logit(proj[i], cent[i % cols], temp); }
};
template <class T>
struct DivFn {
  const T* x;
  T d;
  T* y;
  __device__ void operator()(Index i) const { y[i] = x[i] / d; }
};
template <class T>
struct CenterUpdateFn {
  T* cent;
  const T* colsum;
  T n, cmom;
  __device__ void operator()(Index i) const { cent[i] = math::center_update(cent[i], colsum[i], n, cmom); }
};

struct RowwiseOps {
  template <class T>
  static void log_softmax_rows(Ctx<Cuda>&, const T* x, Index rows, Index cols, T* logp, T* entropy) {
    if (rows == 0 || cols == 0) return;
    log_softmax_rows_kernel<<<static_cast<unsigned>(rows), kReduceThreads>>>(x, cols, logp, entropy);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  template <class T>
  static void exp_map(Ctx<Cuda>&, const T* logp, Index n, T* p) {
    for_each(n, ExpFn<T>{logp, p});
  }
  template <class T>
  static void one_hot_rows(Ctx<Cuda>&, const T* labels, Index rows, Index cols, T* q) {
    for_each(rows * cols, OneHotFn<T>{labels, cols, q});
  }
  template <class T>
  static void cross_entropy_rows(Ctx<Cuda>&, const T* q, const T* logp, Index rows, Index cols, T* out) {
    if (rows == 0 || cols == 0) return;
    cross_entropy_rows_kernel<<<static_cast<unsigned>(rows), kReduceThreads>>>(q, logp, cols, out);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  template <class T>
  static void mse_rows(Ctx<Cuda>&, const T* t, const T* s, Index rows, Index cols, T* out) {
    if (rows == 0 || cols == 0) return;
    mse_rows_kernel<<<static_cast<unsigned>(rows), kReduceThreads>>>(t, s, cols, out);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  template <class T>
  static void log_softmax_backward_rows(Ctx<Cuda>&, const T* logp, const T* g, Index rows, Index cols, T* dx) {
    if (rows == 0 || cols == 0) return;
    log_softmax_backward_rows_kernel<<<static_cast<unsigned>(rows), kReduceThreads>>>(logp, g, cols, dx);
    DINO_CUDA_CHECK(cudaGetLastError());
  }
  template <class T>
  static void entropy_backward_rows(Ctx<Cuda>&, const T* logp, const T* entropy, Index rows, Index cols, T w, T* dx) {
    for_each(rows * cols, EntropyGradFn<T>{logp, entropy, cols, w, dx});
  }
  template <class T>
  static void squared_diff_backward(Ctx<Cuda>&, const T* t, const T* s, Index n, T coef, T* dx) {
    for_each(n, SquaredDiffGradFn<T>{t, s, coef, dx});
  }
  template <class T>
  static void center_logits(Ctx<Cuda>&, const T* proj, const T* cent, Index rows, Index cols, T temp, T* logits) {
    for_each(rows * cols, CenterLogitFn<T>{proj, cent, cols, temp, logits});
  }
  template <class T>
  static void center_logits_backward(Ctx<Cuda>&, const T* dlogits, Index n, T temp, T* dproj) {
    for_each(n, DivFn<T>{dlogits, temp, dproj});
  }
  template <class T>
  static void center_update(Ctx<Cuda>&, T* cent, const T* colsum, Index n_rows, Index cols, T cmom) {
    for_each(cols, CenterUpdateFn<T>{cent, colsum, static_cast<T>(n_rows), cmom});
  }
};

}  // namespace dino::cuda

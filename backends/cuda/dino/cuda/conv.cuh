// CUDA 2-d convolution (twin of cpu/conv.hpp): torch.nn.functional.conv2d and its backward, NCHW, groups 1,
// dilation 1. Chunks of images are lowered by im2col to cuBLAS GEMMs; col2im gathers (no atomics), and the
// weight gradient accumulates chunk after chunk, so results are reproducible run to run.
#pragma once
#include <algorithm>

#include "dino/core/math.hpp"
#include "dino/cuda/blas.cuh"
#include "dino/cuda/memory.cuh"

namespace dino::cuda {

namespace conv_detail {

// A chunk's im2col holds at most about this many elements.
constexpr Index kColTarget = Index(1) << 23;

struct Plan {
  Index k = 0, hw = 0, images = 1, chunks = 0;
};
inline Plan plan(const math::Window2d& g) {
  Plan p;
  p.k = g.c * g.kh * g.kw;
  p.hw = g.oh * g.ow;
  p.images = std::clamp<Index>(kColTarget / std::max<Index>(p.k * p.hw, 1), 1, std::max<Index>(g.n, 1));
  p.chunks = (g.n + p.images - 1) / p.images;
  return p;
}

// col [k, images * hw] from x [images, c, h, w], zero in the padding (the layout of cpu::conv_detail::im2col).
template <class T>
struct Im2colFn {
  math::Window2d g;
  Index images;
  const T* x;
  T* col;
  __device__ void operator()(Index e) const {
    const Index hw = g.oh * g.ow, ld = images * hw;
    const Index r = e / ld, q = e % ld;
    const Index img = q / hw, pix = q % hw, oy = pix / g.ow, ox = pix % g.ow;
    const Index j = r % g.kw, i = (r / g.kw) % g.kh, ci = r / (g.kw * g.kh);
    const Index iy = oy * g.sh + i - g.ph, ix = ox * g.sw + j - g.pw;
    col[e] = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? x[((img * g.c + ci) * g.h + iy) * g.w + ix] : T(0);
  }
};

// dx [images, c, h, w] = the sum of the col entries im2col took from each input, in (i, j) order as the
// CPU's col2im (overwritten).
template <class T>
struct Col2imFn {
  math::Window2d g;
  Index images;
  const T* col;
  T* dx;
  __device__ void operator()(Index e) const {
    const Index ix = e % g.w, iy = (e / g.w) % g.h, ci = (e / (g.w * g.h)) % g.c, img = e / (g.w * g.h * g.c);
    const Index hw = g.oh * g.ow, ld = images * hw;
    T s = 0;
    for (Index i = 0; i < g.kh; ++i) {
      const Index ty = iy + g.ph - i;
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.oh) continue;
      for (Index j = 0; j < g.kw; ++j) {
        const Index tx = ix + g.pw - j;
        if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.ow) continue;
        s += col[((ci * g.kh + i) * g.kw + j) * ld + img * hw + (ty / g.sh) * g.ow + tx / g.sw];
      }
    }
    dx[e] = s;
  }
};

// y [images, c_out, hw] = tmp [c_out, images * hw] + bias (bias may be null).
template <class T>
struct ScatterBiasFn {
  Index images, c_out, hw;
  const T* tmp;
  const T* bias;
  T* y;
  __device__ void operator()(Index e) const {
    const Index pix = e % hw, co = (e / hw) % c_out, img = e / (hw * c_out);
    y[e] = tmp[co * images * hw + img * hw + pix] + (bias ? bias[co] : T(0));
  }
};

// dyt [c_out, images * hw] from dy [images, c_out, hw].
template <class T>
struct GatherRowsFn {
  Index images, c_out, hw;
  const T* dy;
  T* dyt;
  __device__ void operator()(Index e) const {
    const Index q = e % (images * hw), co = e / (images * hw);
    const Index img = q / hw, pix = q % hw;
    dyt[e] = dy[(img * c_out + co) * hw + pix];
  }
};

// dbias[co] += sum over images and pixels of dy [n, c_out, hw]: one block per channel, a fixed tree.
template <class T>
__global__ void conv_bias_grad_kernel(const T* dy, Index n, Index c_out, Index hw, T* dbias) {
  __shared__ T shared[kReduceThreads];
  const Index co = blockIdx.x;
  T s = 0;
  for (Index t = threadIdx.x; t < n * hw; t += blockDim.x) s += dy[((t / hw) * c_out + co) * hw + t % hw];
  const T total = block_sum(s, shared);
  if (threadIdx.x == 0) dbias[co] += total;
}

}  // namespace conv_detail

struct ConvOps {
  // x [n, c, h, w], weight [c_out, c, kh, kw], bias [c_out] or null -> y [n, c_out, oh, ow] (overwritten).
  template <class T>
  static void conv2d_forward(Ctx<Cuda>& ctx, const math::Window2d& g, Index c_out, const T* x, const T* weight,
                             const T* bias, T* y) {
    using namespace conv_detail;
    const Plan p = plan(g);
    if (g.n == 0 || c_out == 0 || p.hw == 0) return;
    const Index ld = p.images * p.hw;
    T* col = ctx.scratch<T>(p.k * ld + c_out * ld);
    T* tmp = col + p.k * ld;
    for (Index chunk = 0; chunk < p.chunks; ++chunk) {
      const Index img0 = chunk * p.images, images = std::min(p.images, g.n - img0);
      const Index cols = images * p.hw;
      for_each(p.k * cols, Im2colFn<T>{g, images, x + img0 * g.c * g.h * g.w, col});
      BlasOps::gemm(ctx, false, false, c_out, cols, p.k, T(1), weight, p.k, col, cols, T(0), tmp, cols);
      for_each(images * c_out * p.hw, ScatterBiasFn<T>{images, c_out, p.hw, tmp, bias, y + img0 * c_out * p.hw});
    }
  }

  // Backward of conv2d_forward: adds into dweight [c_out, c, kh, kw] and dbias [c_out] (if not null);
  // overwrites dx [n, c, h, w] if not null.
  template <class T>
  static void conv2d_backward(Ctx<Cuda>& ctx, const math::Window2d& g, Index c_out, const T* x, const T* weight,
                              const T* dy, T* dx, T* dweight, T* dbias) {
    using namespace conv_detail;
    const Plan p = plan(g);
    if (g.n == 0 || c_out == 0) return;
    if (p.hw == 0) {
      if (dx) MemoryOps::fill(dx, g.n * g.c * g.h * g.w, T(0));
      return;
    }
    const Index ld = p.images * p.hw;
    T* col = ctx.scratch<T>(p.k * ld + c_out * ld);
    T* dyt = col + p.k * ld;
    for (Index chunk = 0; chunk < p.chunks; ++chunk) {
      const Index img0 = chunk * p.images, images = std::min(p.images, g.n - img0);
      const Index cols = images * p.hw;
      for_each(c_out * cols, GatherRowsFn<T>{images, c_out, p.hw, dy + img0 * c_out * p.hw, dyt});
      for_each(p.k * cols, Im2colFn<T>{g, images, x + img0 * g.c * g.h * g.w, col});
      BlasOps::gemm(ctx, false, true, c_out, p.k, cols, T(1), dyt, cols, col, cols, T(1), dweight, p.k);
      if (dx) {
        BlasOps::gemm(ctx, true, false, p.k, cols, c_out, T(1), weight, p.k, dyt, cols, T(0), col, cols);
        for_each(images * g.c * g.h * g.w, Col2imFn<T>{g, images, col, dx + img0 * g.c * g.h * g.w});
      }
    }
    if (dbias) {
      conv_bias_grad_kernel<<<static_cast<unsigned>(c_out), kReduceThreads>>>(dy, g.n, c_out, p.hw, dbias);
      DINO_CUDA_CHECK(cudaGetLastError());
    }
  }
};

}  // namespace dino::cuda

// CUDA 2-d pooling (twin of cpu/pooling.hpp): max, average and adaptive average, forward and backward. Forward
// is one thread per output; backward one thread per input, gathering the windows that cover it in output
// order (no atomics), which is the order in which the CPU's scatter adds them.
#pragma once
#include "dino/core/math.hpp"
#include "dino/cuda/launch.cuh"

namespace dino::cuda {

namespace pool_detail {

struct OutIndex {
  Index plane, oy, ox;
  __device__ OutIndex(const math::Window2d& g, Index e)
      : plane(e / (g.oh * g.ow)), oy((e / g.ow) % g.oh), ox(e % g.ow) {}
};
struct InIndex {
  Index plane, iy, ix;
  __device__ InIndex(const math::Window2d& g, Index e) : plane(e / (g.h * g.w)), iy((e / g.w) % g.h), ix(e % g.w) {}
};

template <class T>
struct MaxFwd {
  math::Window2d g;
  const T* x;
  T* y;
  __device__ void operator()(Index e) const {
    const OutIndex o(g, e);
    const T* in = x + o.plane * g.h * g.w;
    const Index y0 = math::window_lo(o.oy, g.sh, g.ph), y1 = math::window_hi(o.oy, g.kh, g.sh, g.ph, g.h);
    const Index x0 = math::window_lo(o.ox, g.sw, g.pw), x1 = math::window_hi(o.ox, g.kw, g.sw, g.pw, g.w);
    y[e] = in[math::window_argmax(in, g.w, y0, y1, x0, x1)];
  }
};

template <class T>
struct MaxBwd {
  math::Window2d g;
  const T* x;
  const T* dy;
  T* dx;
  __device__ void operator()(Index e) const {
    const InIndex in_i(g, e);
    const T* in = x + in_i.plane * g.h * g.w;
    const T* d = dy + in_i.plane * g.oh * g.ow;
    const Index self = in_i.iy * g.w + in_i.ix;
    const Index oy1 = math::windows_hi(in_i.iy, g.sh, g.ph, g.oh), ox1 = math::windows_hi(in_i.ix, g.sw, g.pw, g.ow);
    T s = 0;
    for (Index oy = math::windows_lo(in_i.iy, g.kh, g.sh, g.ph); oy < oy1; ++oy) {
      const Index y0 = math::window_lo(oy, g.sh, g.ph), y1 = math::window_hi(oy, g.kh, g.sh, g.ph, g.h);
      for (Index ox = math::windows_lo(in_i.ix, g.kw, g.sw, g.pw); ox < ox1; ++ox) {
        const Index x0 = math::window_lo(ox, g.sw, g.pw), x1 = math::window_hi(ox, g.kw, g.sw, g.pw, g.w);
        if (math::window_argmax(in, g.w, y0, y1, x0, x1) == self) s += d[oy * g.ow + ox];
      }
    }
    dx[e] = s;
  }
};

template <class T>
struct AvgFwd {
  math::Window2d g;
  bool count_include_pad;
  const T* x;
  T* y;
  __device__ void operator()(Index e) const {
    const OutIndex o(g, e);
    const T* in = x + o.plane * g.h * g.w;
    const Index y0 = math::window_lo(o.oy, g.sh, g.ph), y1 = math::window_hi(o.oy, g.kh, g.sh, g.ph, g.h);
    const Index x0 = math::window_lo(o.ox, g.sw, g.pw), x1 = math::window_hi(o.ox, g.kw, g.sw, g.pw, g.w);
    const Index div = math::avg_pool_divisor(o.oy * g.sh - g.ph, o.ox * g.sw - g.pw, g.kh, g.kw, g.h, g.w, g.ph,
                                             g.pw, count_include_pad);
    y[e] = math::window_sum(in, g.w, y0, y1, x0, x1) / static_cast<T>(div);
  }
};

template <class T>
struct AvgBwd {
  math::Window2d g;
  bool count_include_pad;
  const T* dy;
  T* dx;
  __device__ void operator()(Index e) const {
    const InIndex in_i(g, e);
    const T* d = dy + in_i.plane * g.oh * g.ow;
    const Index oy1 = math::windows_hi(in_i.iy, g.sh, g.ph, g.oh), ox1 = math::windows_hi(in_i.ix, g.sw, g.pw, g.ow);
    T s = 0;
    for (Index oy = math::windows_lo(in_i.iy, g.kh, g.sh, g.ph); oy < oy1; ++oy)
      for (Index ox = math::windows_lo(in_i.ix, g.kw, g.sw, g.pw); ox < ox1; ++ox) {
        const Index div = math::avg_pool_divisor(oy * g.sh - g.ph, ox * g.sw - g.pw, g.kh, g.kw, g.h, g.w, g.ph,
                                                 g.pw, count_include_pad);
        s += d[oy * g.ow + ox] / static_cast<T>(div);
      }
    dx[e] = s;
  }
};

template <class T>
struct AdaptiveFwd {
  math::Window2d g;
  const T* x;
  T* y;
  __device__ void operator()(Index e) const {
    const OutIndex o(g, e);
    const T* in = x + o.plane * g.h * g.w;
    const Index y0 = math::adaptive_start(o.oy, g.h, g.oh), y1 = math::adaptive_end(o.oy, g.h, g.oh);
    const Index x0 = math::adaptive_start(o.ox, g.w, g.ow), x1 = math::adaptive_end(o.ox, g.w, g.ow);
    y[e] = math::window_sum(in, g.w, y0, y1, x0, x1) / static_cast<T>((y1 - y0) * (x1 - x0));
  }
};

template <class T>
struct AdaptiveBwd {
  math::Window2d g;
  const T* dy;
  T* dx;
  __device__ void operator()(Index e) const {
    const InIndex in_i(g, e);
    const T* d = dy + in_i.plane * g.oh * g.ow;
    const Index oy1 = math::adaptive_end(in_i.iy, g.oh, g.h), ox1 = math::adaptive_end(in_i.ix, g.ow, g.w);
    T s = 0;
    for (Index oy = math::adaptive_start(in_i.iy, g.oh, g.h); oy < oy1; ++oy) {
      const Index y0 = math::adaptive_start(oy, g.h, g.oh), y1 = math::adaptive_end(oy, g.h, g.oh);
      for (Index ox = math::adaptive_start(in_i.ix, g.ow, g.w); ox < ox1; ++ox) {
        const Index x0 = math::adaptive_start(ox, g.w, g.ow), x1 = math::adaptive_end(ox, g.w, g.ow);
        s += d[oy * g.ow + ox] / static_cast<T>((y1 - y0) * (x1 - x0));
      }
    }
    dx[e] = s;
  }
};

}  // namespace pool_detail

struct PoolingOps {
  // x [n, c, h, w] -> y [n, c, oh, ow] (overwritten); the padding counts as -inf.
  template <class T>
  static void max_pool2d_forward(Ctx<Cuda>&, const math::Window2d& g, const T* x, T* y) {
    for_each(g.n * g.c * g.oh * g.ow, pool_detail::MaxFwd<T>{g, x, y});
  }
  // dx [n, c, h, w] (overwritten): each dy goes to its window's first maximum in x.
  template <class T>
  static void max_pool2d_backward(Ctx<Cuda>&, const math::Window2d& g, const T* x, const T* dy, T* dx) {
    for_each(g.n * g.c * g.h * g.w, pool_detail::MaxBwd<T>{g, x, dy, dx});
  }
  // x [n, c, h, w] -> y [n, c, oh, ow] (overwritten): window sums over math::avg_pool_divisor.
  template <class T>
  static void avg_pool2d_forward(Ctx<Cuda>&, const math::Window2d& g, bool count_include_pad, const T* x, T* y) {
    for_each(g.n * g.c * g.oh * g.ow, pool_detail::AvgFwd<T>{g, count_include_pad, x, y});
  }
  // dx [n, c, h, w] (overwritten).
  template <class T>
  static void avg_pool2d_backward(Ctx<Cuda>&, const math::Window2d& g, bool count_include_pad, const T* dy, T* dx) {
    for_each(g.n * g.c * g.h * g.w, pool_detail::AvgBwd<T>{g, count_include_pad, dy, dx});
  }
  // x [n, c, h, w] -> y [n, c, oh, ow] (overwritten): means over torch's adaptive bins.
  template <class T>
  static void adaptive_avg_pool2d_forward(Ctx<Cuda>&, const math::Window2d& g, const T* x, T* y) {
    for_each(g.n * g.c * g.oh * g.ow, pool_detail::AdaptiveFwd<T>{g, x, y});
  }
  // dx [n, c, h, w] (overwritten).
  template <class T>
  static void adaptive_avg_pool2d_backward(Ctx<Cuda>&, const math::Window2d& g, const T* dy, T* dx) {
    for_each(g.n * g.c * g.h * g.w, pool_detail::AdaptiveBwd<T>{g, dy, dx});
  }
};

}  // namespace dino::cuda

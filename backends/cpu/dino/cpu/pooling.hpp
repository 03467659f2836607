// CPU 2-d pooling over [N, C, H, W]: max (torch.nn.functional.max_pool2d), average (avg_pool2d) and adaptive
// average (adaptive_avg_pool2d), forward and backward, ceil_mode False. One (image, channel) plane per task;
// the window rules are those of dino/core/math.hpp, shared with the CUDA kernels.
#pragma once
#include <algorithm>

#include "dino/core/math.hpp"
#include "dino/cpu/parallel.hpp"

namespace dino::cpu {

struct PoolingOps {
  // x [n, c, h, w] -> y [n, c, oh, ow] (overwritten); the padding counts as -inf.
  template <class T>
  static void max_pool2d_forward(Ctx<Cpu>&, const math::Window2d& g, const T* x, T* y) {
    for_planes(g, [=](const T* in, T* out) {
      for (Index oy = 0; oy < g.oh; ++oy) {
        const Index y0 = math::window_lo(oy, g.sh, g.ph), y1 = math::window_hi(oy, g.kh, g.sh, g.ph, g.h);
        for (Index ox = 0; ox < g.ow; ++ox) {
          const Index x0 = math::window_lo(ox, g.sw, g.pw), x1 = math::window_hi(ox, g.kw, g.sw, g.pw, g.w);
          out[oy * g.ow + ox] = in[math::window_argmax(in, g.w, y0, y1, x0, x1)];
        }
      }
    }, x, y);
  }
  // dx [n, c, h, w] (overwritten): each dy goes to its window's first maximum in x, found again here.
  template <class T>
  static void max_pool2d_backward(Ctx<Cpu>&, const math::Window2d& g, const T* x, const T* dy, T* dx) {
    parallel_for(
        g.n * g.c,
        [=](Index p) {
          const T* in = x + p * g.h * g.w;
          const T* d = dy + p * g.oh * g.ow;
          T* out = dx + p * g.h * g.w;
          std::fill(out, out + g.h * g.w, T(0));
          for (Index oy = 0; oy < g.oh; ++oy) {
            const Index y0 = math::window_lo(oy, g.sh, g.ph), y1 = math::window_hi(oy, g.kh, g.sh, g.ph, g.h);
            for (Index ox = 0; ox < g.ow; ++ox) {
              const Index x0 = math::window_lo(ox, g.sw, g.pw), x1 = math::window_hi(ox, g.kw, g.sw, g.pw, g.w);
              out[math::window_argmax(in, g.w, y0, y1, x0, x1)] += d[oy * g.ow + ox];
            }
          }
        },
        grain(g));
  }

  // x [n, c, h, w] -> y [n, c, oh, ow] (overwritten): window sums over the divisor of math::avg_pool_divisor.
  template <class T>
  static void avg_pool2d_forward(Ctx<Cpu>&, const math::Window2d& g, bool count_include_pad, const T* x, T* y) {
    for_planes(g, [=](const T* in, T* out) {
      for (Index oy = 0; oy < g.oh; ++oy) {
        const Index y0 = math::window_lo(oy, g.sh, g.ph), y1 = math::window_hi(oy, g.kh, g.sh, g.ph, g.h);
        for (Index ox = 0; ox < g.ow; ++ox) {
          const Index x0 = math::window_lo(ox, g.sw, g.pw), x1 = math::window_hi(ox, g.kw, g.sw, g.pw, g.w);
          const Index div = math::avg_pool_divisor(oy * g.sh - g.ph, ox * g.sw - g.pw, g.kh, g.kw, g.h, g.w, g.ph,
                                                   g.pw, count_include_pad);
          out[oy * g.ow + ox] = math::window_sum(in, g.w, y0, y1, x0, x1) / static_cast<T>(div);
        }
      }
    }, x, y);
  }
  // dx [n, c, h, w] (overwritten): every input of a window receives dy / divisor, in output order.
  template <class T>
  static void avg_pool2d_backward(Ctx<Cpu>&, const math::Window2d& g, bool count_include_pad, const T* dy, T* dx) {
    parallel_for(
        g.n * g.c,
        [=](Index p) {
          const T* d = dy + p * g.oh * g.ow;
          T* out = dx + p * g.h * g.w;
          std::fill(out, out + g.h * g.w, T(0));
          for (Index oy = 0; oy < g.oh; ++oy) {
            const Index y0 = math::window_lo(oy, g.sh, g.ph), y1 = math::window_hi(oy, g.kh, g.sh, g.ph, g.h);
            for (Index ox = 0; ox < g.ow; ++ox) {
              const Index x0 = math::window_lo(ox, g.sw, g.pw), x1 = math::window_hi(ox, g.kw, g.sw, g.pw, g.w);
              const Index div = math::avg_pool_divisor(oy * g.sh - g.ph, ox * g.sw - g.pw, g.kh, g.kw, g.h, g.w,
                                                       g.ph, g.pw, count_include_pad);
              const T v = d[oy * g.ow + ox] / static_cast<T>(div);
              for (Index iy = y0; iy < y1; ++iy)
                for (Index ix = x0; ix < x1; ++ix) out[iy * g.w + ix] += v;
            }
          }
        },
        grain(g));
  }

  // x [n, c, h, w] -> y [n, c, oh, ow] (overwritten): means over torch's adaptive bins (g's kernel, stride
  // and padding are unused).
  template <class T>
  static void adaptive_avg_pool2d_forward(Ctx<Cpu>&, const math::Window2d& g, const T* x, T* y) {
    for_planes(g, [=](const T* in, T* out) {
      for (Index oy = 0; oy < g.oh; ++oy) {
        const Index y0 = math::adaptive_start(oy, g.h, g.oh), y1 = math::adaptive_end(oy, g.h, g.oh);
        for (Index ox = 0; ox < g.ow; ++ox) {
          const Index x0 = math::adaptive_start(ox, g.w, g.ow), x1 = math::adaptive_end(ox, g.w, g.ow);
          out[oy * g.ow + ox] = math::window_sum(in, g.w, y0, y1, x0, x1) / static_cast<T>((y1 - y0) * (x1 - x0));
        }
      }
    }, x, y);
  }
  // dx [n, c, h, w] (overwritten): every input of a bin receives dy / bin size, in output order.
  template <class T>
  static void adaptive_avg_pool2d_backward(Ctx<Cpu>&, const math::Window2d& g, const T* dy, T* dx) {
    parallel_for(
        g.n * g.c,
        [=](Index p) {
          const T* d = dy + p * g.oh * g.ow;
          T* out = dx + p * g.h * g.w;
          std::fill(out, out + g.h * g.w, T(0));
          for (Index oy = 0; oy < g.oh; ++oy) {
            const Index y0 = math::adaptive_start(oy, g.h, g.oh), y1 = math::adaptive_end(oy, g.h, g.oh);
            for (Index ox = 0; ox < g.ow; ++ox) {
              const Index x0 = math::adaptive_start(ox, g.w, g.ow), x1 = math::adaptive_end(ox, g.w, g.ow);
              const T v = d[oy * g.ow + ox] / static_cast<T>((y1 - y0) * (x1 - x0));
              for (Index iy = y0; iy < y1; ++iy)
                for (Index ix = x0; ix < x1; ++ix) out[iy * g.w + ix] += v;
            }
          }
        },
        grain(g));
  }

 private:
  // Planes per task so that a parallel region gets enough work.
  static Index grain(const math::Window2d& g) {
    return std::max<Index>(1, kParallelGrain / std::max<Index>(g.h * g.w + g.oh * g.ow, 1));
  }
  template <class T, class F>
  static void for_planes(const math::Window2d& g, F f, const T* x, T* y) {
    parallel_for(
        g.n * g.c, [=](Index p) { f(x + p * g.h * g.w, y + p * g.oh * g.ow); }, grain(g));
  }
};

}  // namespace dino::cpu

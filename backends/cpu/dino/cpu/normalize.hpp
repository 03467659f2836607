// CPU L2 normalisation of rows, y = x / max(||x||_2, eps) per row, as torch.nn.functional.normalize(dim=-1).
// Serves the head's feature normalisation (fn, fnd) and weight normalisation (wn) of Linear rows.
#pragma once
#include <cmath>

#include "dino/core/math.hpp"
#include "dino/cpu/parallel.hpp"

namespace dino::cpu {

struct NormalizeOps {
  // x, y [rows, cols]; norms [rows] receives ||x_row||_2 (before the clamp).
  template <class T>
  static void l2_normalize_rows_forward(Ctx<Cpu>&, const T* x, Index rows, Index cols, T eps, T* y, T* norms) {
    parallel_for(
        rows,
        [=](Index r) {
          const T* xr = x + r * cols;
          T s = 0;
          for (Index j = 0; j < cols; ++j) s += xr[j] * xr[j];
          const T n = math::sqrt_(s);
          norms[r] = n;
          const T d = math::max_(n, eps);
          T* yr = y + r * cols;
          for (Index j = 0; j < cols; ++j) yr[j] = xr[j] / d;
        },
        row_grain(cols));
  }
  // dx = (dy - y <y, dy>) / ||x|| where the norm exceeds eps, else dy / eps (the clamp is constant there).
  // With detach_norm (fnd), the denominator is treated as a constant everywhere: dx = dy / max(||x||, eps).
  template <class T>
  static void l2_normalize_rows_backward(Ctx<Cpu>&, const T* y, const T* norms, const T* dy, Index rows,
                                         Index cols, T eps, bool detach_norm, T* dx) {
    parallel_for(
        rows,
        [=](Index r) {
          const T* yr = y + r * cols;
          const T* dyr = dy + r * cols;
          T* dxr = dx + r * cols;
          const T n = norms[r];
          const T d = math::max_(n, eps);
          T dot = 0;
          if (!detach_norm && n >= eps)
            for (Index j = 0; j < cols; ++j) dot += yr[j] * dyr[j];
          for (Index j = 0; j < cols; ++j) dxr[j] = (dyr[j] - yr[j] * dot) / d;
        },
        row_grain(cols));
  }

 private:
  static Index row_grain(Index cols) { return cols >= kParallelGrain ? 1 : kParallelGrain / (cols > 0 ? cols : 1); }
};

}  // namespace dino::cpu

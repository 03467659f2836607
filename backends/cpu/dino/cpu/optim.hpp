// CPU optimizer updates (torch.optim.SGD, Adam, AdamW single-tensor steps over one parameter tensor's range)
// and the double-precision sums of squares behind clip_grad_norm_. Each element follows
// dino/optim/update_rules.hpp.
#pragma once
#include <algorithm>
#include <cstddef>

#include "dino/core/math.hpp"
#include "dino/cpu/parallel.hpp"
#include "dino/optim/update_rules.hpp"

namespace dino::cpu {

struct OptimOps {
  // Elements per partial sum of sum_squares_f64: the chunking, and so the result, depends on the range
  // lengths only, never on the thread count.
  static constexpr Index kSquaresChunk = 4096;

  // AdamW on n elements: updates p, m (exp_avg), v (exp_avg_sq) in place; g is read only.
  template <class T>
  static void adamw_update(Ctx<Cpu>&, T* p, const T* g, T* m, T* v, Index n, const optim::AdamFactors<T>& f) {
    parallel_for(n, [=](Index i) { optim::adamw_element(p[i], g[i], m[i], v[i], f); });
  }
  // Adam (L2-coupled decay) on n elements: updates p, m, v in place; g is read only.
  template <class T>
  static void adam_update(Ctx<Cpu>&, T* p, const T* g, T* m, T* v, Index n, const optim::AdamFactors<T>& f) {
    parallel_for(n, [=](Index i) { optim::adam_element(p[i], g[i], m[i], v[i], f); });
  }
  // SGD on n elements: updates p and, unless buf is null (momentum 0), the momentum buffer, which is
  // overwritten on the tensor's first step (first = true); g is read only.
  template <class T>
  static void sgd_update(Ctx<Cpu>&, T* p, const T* g, T* buf, bool first, Index n, const optim::SgdFactors<T>& f) {
    if (buf)
      parallel_for(n, [=](Index i) { optim::sgd_momentum_element(p[i], g[i], buf[i], first, f); });
    else
      parallel_for(n, [=](Index i) { optim::sgd_element(p[i], g[i], f); });
  }

  // out[s] = sum of x[i]^2 over [offsets[s], offsets[s] + counts[s]) for s < k, accumulated in double over
  // chunks of kSquaresChunk combined in index order (host arrays in and out). Bit-identical for any thread
  // count, and each out[s] equals sum_squares_f64 of its range alone.
  template <class T>
  static void sum_squares_f64_segments(Ctx<Cpu>& ctx, const T* x, const Index* offsets, const Index* counts, Index k,
                                       double* out) {
    Index tasks = 0;
    for (Index s = 0; s < k; ++s) tasks += chunks(counts[s]);
    if (tasks == 0) {
      std::fill(out, out + k, 0.0);
      return;
    }
    double* partial = ctx.scratch<double>(tasks);
    // Chunks are numbered segment after segment; a task finds its segment by walking the (short) list.
    parallel_for(
        tasks,
        [=](Index t) {
          Index s = 0, first = 0;
          while (t >= first + chunks(counts[s])) first += chunks(counts[s++]);
          const Index i0 = (t - first) * kSquaresChunk, i1 = std::min(counts[s], i0 + kSquaresChunk);
          partial[t] = chunk_squares(x + offsets[s], i0, i1);
        },
        4);
    Index t = 0;
    for (Index s = 0; s < k; ++s) {
      double total = 0;
      for (Index c = 0; c < chunks(counts[s]); ++c) total += partial[t++];
      out[s] = total;
    }
  }
  // sum_i x[i]^2 over [0, n), in double, deterministic as sum_squares_f64_segments.
  template <class T>
  static double sum_squares_f64(Ctx<Cpu>& ctx, const T* x, Index n) {
    const Index offset = 0;
    double out = 0;
    sum_squares_f64_segments(ctx, x, &offset, &n, 1, &out);
    return out;
  }

 private:
  static Index chunks(Index n) { return (n + kSquaresChunk - 1) / kSquaresChunk; }
  // Four interleaved accumulators (a fixed pattern, so still deterministic) break the dependency chain.
  template <class T>
  static double chunk_squares(const T* x, Index i0, Index i1) {
    double a[4] = {0, 0, 0, 0};
    Index i = i0;
    for (; i + 4 <= i1; i += 4)
      for (int l = 0; l < 4; ++l) {
        const double v = static_cast<double>(x[i + l]);
        a[l] += v * v;
      }
    for (; i < i1; ++i) {
      const double v = static_cast<double>(x[i]);
      a[0] += v * v;
    }
    return (a[0] + a[1]) + (a[2] + a[3]);
  }
};

}  // namespace dino::cpu

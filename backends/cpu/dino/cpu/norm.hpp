// CPU statistics and element maps of BatchNorm (torch.batch_norm: per channel over N and the spatial
// positions) and GroupNorm (torch.group_norm: per sample and group of channels). Inputs are [N, C, S], S the
// product of the spatial dimensions (1 for [N, C]).
#pragma once
#include <algorithm>

#include "dino/core/math.hpp"
#include "dino/cpu/parallel.hpp"

namespace dino::cpu {

// Determinism: every channel (BatchNorm) or (sample, group) (GroupNorm) is reduced by one thread in index
// order, so the result does not depend on the thread count. Sums are taken in chunks (rows of S values, then
// chunks of rows) whose partials are added in order: the float rounding error then stays near the chunk
// sizes in ulps instead of growing with N * S, without a wider accumulator.
struct NormOps {
  // Batch statistics of x [N, C, S] per channel: mean [C] and invstd = 1 / sqrt(var + eps) [C] with the
  // biased variance (overwritten; untouched when N S = 0). When running_mean and running_var [C] are non-null
  // they move towards the batch mean and the unbiased variance var N S / (N S - 1):
  // r = (1 - momentum) r + momentum b.
  template <class T>
  static void batch_norm_stats(Ctx<Cpu>&, const T* x, Index n, Index c, Index s, T eps, T momentum, T* running_mean,
                               T* running_var, T* mean, T* invstd) {
    const Index count = n * s;
    if (count == 0) return;
    for_channel_blocks(n, c, s, [=](Index c0, Index c1) {
      T sum[1][kChannelBlock], sq[1][kChannelBlock], m[kChannelBlock];
      // The sum is taken of x minus the channel's first value, so that its rounding error scales with the
      // spread of the values rather than with |mean| (the shifted-data method).
      sum_channel_rows(n, c0, c1, sum, [=](Index i, Index j, T* p) {
        const T* row = x + (i * c + j) * s;
        const T shift = x[j * s];
        p[0] = chunked_sum<T>(s, [=](Index k) { return row[k] - shift; });
      });
      for (Index j = c0; j < c1; ++j) m[j - c0] = x[j * s] + sum[0][j - c0] / T(count);
      // Squared deviations from the mean (a second pass): no cancellation as in E[x^2] - E[x]^2.
      sum_channel_rows(n, c0, c1, sq, [=, &m](Index i, Index j, T* p) {
        const T* row = x + (i * c + j) * s;
        const T mj = m[j - c0];
        p[0] = chunked_sum<T>(s, [=](Index k) { return (row[k] - mj) * (row[k] - mj); });
      });
      for (Index j = c0; j < c1; ++j) {
        const T mj = m[j - c0], var_sum = sq[0][j - c0];
        mean[j] = mj;
        invstd[j] = math::inv_std(var_sum / T(count), eps);
        if (running_mean != nullptr) {
          const T unbiased = count > 1 ? var_sum / T(count - 1) : var_sum;
          running_mean[j] = math::running_update(running_mean[j], mj, momentum);
          running_var[j] = math::running_update(running_var[j], unbiased, momentum);
        }
      }
    });
  }

  // The statistics of an eval-mode forward: mean = running_mean, invstd = 1 / sqrt(running_var + eps) [C].
  template <class T>
  static void batch_norm_running_stats(Ctx<Cpu>&, const T* running_mean, const T* running_var, Index c, T eps,
                                       T* mean, T* invstd) {
    for (Index j = 0; j < c; ++j) {
      mean[j] = running_mean[j];
      invstd[j] = math::inv_std(running_var[j], eps);
    }
  }

  // y = weight (x - mean) invstd + bias over x, y [N, C, S] (y overwritten) with per-channel mean, invstd,
  // weight, bias [C]; weight and bias may be null (1 and 0).
  template <class T>
  static void batch_norm_forward(Ctx<Cpu>&, const T* x, Index n, Index c, Index s, const T* mean, const T* invstd,
                                 const T* weight, const T* bias, T* y) {
    parallel_for(
        n * c,
        [=](Index r) {
          const Index j = r % c;
          const T w = weight ? weight[j] : T(1), b = bias ? bias[j] : T(0);
          const T mj = mean[j], is = invstd[j];
          const T* xr = x + r * s;
          T* yr = y + r * s;
          for (Index k = 0; k < s; ++k) yr[k] = math::norm_affine(xr[k], mj, is, w, b);
        },
        row_grain(s));
  }

  // Per-channel sums over dy, x [N, C, S]: sum_dy = sum dy and sum_dy_xhat = sum dy (x - mean) invstd [C]
  // (overwritten). They are the bias and weight gradients, and are added into dbias and dweight when those
  // are non-null.
  template <class T>
  static void batch_norm_backward_reduce(Ctx<Cpu>&, const T* dy, const T* x, Index n, Index c, Index s,
                                         const T* mean, const T* invstd, T* sum_dy, T* sum_dy_xhat, T* dweight,
                                         T* dbias) {
    for_channel_blocks(n, c, s, [=](Index c0, Index c1) {
      T acc[2][kChannelBlock];
      sum_channel_rows(n, c0, c1, acc, [=](Index i, Index j, T* p) {
        const T *dyr = dy + (i * c + j) * s, *xr = x + (i * c + j) * s;
        const T mj = mean[j], is = invstd[j];
        p[0] = chunked_sum<T>(s, [=](Index k) { return dyr[k]; });
        p[1] = chunked_sum<T>(s, [=](Index k) { return dyr[k] * math::norm_xhat(xr[k], mj, is); });
      });
      for (Index j = c0; j < c1; ++j) {
        sum_dy[j] = acc[0][j - c0];
        sum_dy_xhat[j] = acc[1][j - c0];
        if (dbias != nullptr) dbias[j] += acc[0][j - c0];
        if (dweight != nullptr) dweight[j] += acc[1][j - c0];
      }
    });
  }

  // dx [N, C, S] (overwritten) = invstd (g - mean(g) - x^ mean(g x^)) with g = weight dy (weight null: 1).
  // batch_stats (train mode): the means run over the channel's N S values, from sum_dy and sum_dy_xhat of
  // batch_norm_backward_reduce. Otherwise (eval mode) the statistics are constants, the means are 0 and the
  // sums are not read: dx = weight invstd dy.
  template <class T>
  static void batch_norm_backward_input(Ctx<Cpu>&, const T* dy, const T* x, Index n, Index c, Index s,
                                        const T* mean, const T* invstd, const T* weight, const T* sum_dy,
                                        const T* sum_dy_xhat, bool batch_stats, T* dx) {
    const T inv_count = T(1) / T(n * s);
    parallel_for(
        n * c,
        [=](Index r) {
          const Index j = r % c;
          const T w = weight ? weight[j] : T(1);
          const T mj = mean[j], is = invstd[j];
          const T mg = batch_stats ? w * sum_dy[j] * inv_count : T(0);
          const T mgx = batch_stats ? w * sum_dy_xhat[j] * inv_count : T(0);
          const Index off = r * s;
          for (Index k = 0; k < s; ++k)
            dx[off + k] = math::norm_grad(w * dy[off + k], math::norm_xhat(x[off + k], mj, is), is, mg, mgx);
        },
        row_grain(s));
  }

  // Statistics of x [N, C, S] per (sample, group of C/G consecutive channels): mean and invstd
  // = 1 / sqrt(biased var + eps), both [N, G] (overwritten; untouched when S = 0).
  template <class T>
  static void group_norm_stats(Ctx<Cpu>&, const T* x, Index n, Index c, Index s, Index g, T eps, T* mean,
                               T* invstd) {
    const Index cg = c / g, m = cg * s;
    if (m == 0) return;
    parallel_for(
        n * g,
        [=](Index q) {
          const T* xg = x + q * m;
          // Shifted by the group's first value and two passes, as batch_norm_stats.
          const T shift = xg[0];
          const T mu = shift + chunked_sum<T>(m, [=](Index i) { return xg[i] - shift; }) / T(m);
          const T var_sum = chunked_sum<T>(m, [=](Index i) { return (xg[i] - mu) * (xg[i] - mu); });
          mean[q] = mu;
          invstd[q] = math::inv_std(var_sum / T(m), eps);
        },
        task_grain(n * g, m));
  }

  // y = weight[c] (x - mean[n, g]) invstd[n, g] + bias[c] over x, y [N, C, S] (y overwritten); weight and
  // bias [C] may be null (1 and 0).
  template <class T>
  static void group_norm_forward(Ctx<Cpu>&, const T* x, Index n, Index c, Index s, Index g, const T* mean,
                                 const T* invstd, const T* weight, const T* bias, T* y) {
    const Index cg = c / g;
    parallel_for(
        n * c,
        [=](Index r) {
          const Index j = r % c, q = r / cg;
          const T w = weight ? weight[j] : T(1), b = bias ? bias[j] : T(0);
          const T mu = mean[q], is = invstd[q];
          const T* xr = x + r * s;
          T* yr = y + r * s;
          for (Index k = 0; k < s; ++k) yr[k] = math::norm_affine(xr[k], mu, is, w, b);
        },
        row_grain(s));
  }

  // Per (sample, channel) sums over the S positions: sum_dy = sum dy and sum_dy_xhat = sum dy x^ [N, C]
  // (overwritten), x^ normalised with the statistics [N, G] of its group. Summed over N they are the bias
  // and weight gradients.
  template <class T>
  static void group_norm_backward_reduce(Ctx<Cpu>&, const T* dy, const T* x, Index n, Index c, Index s, Index g,
                                         const T* mean, const T* invstd, T* sum_dy, T* sum_dy_xhat) {
    const Index cg = c / g;
    parallel_for(
        n * c,
        [=](Index r) {
          const Index q = r / cg;
          const T mu = mean[q], is = invstd[q];
          const T *dyr = dy + r * s, *xr = x + r * s;
          sum_dy[r] = chunked_sum<T>(s, [=](Index k) { return dyr[k]; });
          sum_dy_xhat[r] = chunked_sum<T>(s, [=](Index k) { return dyr[k] * math::norm_xhat(xr[k], mu, is); });
        },
        row_grain(s));
  }

  // dx [N, C, S] (overwritten) = invstd (g - mean(g) - x^ mean(g x^)), g = weight[c] dy (weight null: 1),
  // the means over the C/G * S values of each (sample, group), from the sums of group_norm_backward_reduce.
  template <class T>
  static void group_norm_backward_input(Ctx<Cpu>&, const T* dy, const T* x, Index n, Index c, Index s, Index g,
                                        const T* mean, const T* invstd, const T* weight, const T* sum_dy,
                                        const T* sum_dy_xhat, T* dx) {
    const Index cg = c / g, m = cg * s;
    const T inv_count = T(1) / T(m);
    parallel_for(
        n * g,
        [=](Index q) {
          const Index r0 = q * cg, c0 = (q % g) * cg;
          auto w_at = [=](Index j) { return weight ? weight[c0 + j] : T(1); };
          const T mg = chunked_sum<T>(cg, [=](Index j) { return w_at(j) * sum_dy[r0 + j]; }) * inv_count;
          const T mgx = chunked_sum<T>(cg, [=](Index j) { return w_at(j) * sum_dy_xhat[r0 + j]; }) * inv_count;
          const T mu = mean[q], is = invstd[q];
          for (Index j = 0; j < cg; ++j) {
            const T w = w_at(j);
            const Index off = (r0 + j) * s;
            for (Index k = 0; k < s; ++k)
              dx[off + k] = math::norm_grad(w * dy[off + k], math::norm_xhat(x[off + k], mu, is), is, mg, mgx);
          }
        },
        task_grain(n * g, m));
  }

 private:
  // Channels per BatchNorm task: with S = 1 ([N, C] input) a task walks rows of a channel block, so each row
  // read is contiguous; with large S a task is one channel.
  static constexpr Index kChannelBlock = 64;

  // Values per chunk of a contiguous sum.
  static constexpr Index kSumChunk = 256;

  // sum of f(i) over i in [0, m): chunk sums of kSumChunk terms added in order, so the float rounding error
  // grows with kSumChunk + m / kSumChunk rather than with m.
  template <class T, class F>
  static T chunked_sum(Index m, F&& f) {
    T total = 0;
    for (Index i0 = 0; i0 < m; i0 += kSumChunk) {
      const Index i1 = std::min(m, i0 + kSumChunk);
      T part = 0;
      for (Index i = i0; i < i1; ++i) part += f(i);
      total += part;
    }
    return total;
  }

  // Rows per chunk of a channel's sum: chunk sums are added in order, which keeps the float error near
  // (S + kRowChunk + N / kRowChunk) ulps for the [N, C] inputs of a head BatchNorm1d with many rows.
  static constexpr Index kRowChunk = 64;

  // acc[k][j - c0] (overwritten) = sum over i in [0, n) of p[k], the K row sums that row(i, j, p) writes for
  // channel j of [c0, c1); rows in index order, grouped in chunks of kRowChunk.
  template <class T, int K, class Row>
  static void sum_channel_rows(Index n, Index c0, Index c1, T (&acc)[K][kChannelBlock], Row&& row) {
    for (int k = 0; k < K; ++k) std::fill(acc[k], acc[k] + (c1 - c0), T(0));
    T chunk[K][kChannelBlock];
    for (Index i0 = 0; i0 < n; i0 += kRowChunk) {
      for (int k = 0; k < K; ++k) std::fill(chunk[k], chunk[k] + (c1 - c0), T(0));
      for (Index i = i0; i < std::min(n, i0 + kRowChunk); ++i)
        for (Index j = c0; j < c1; ++j) {
          T p[K];
          row(i, j, p);
          for (int k = 0; k < K; ++k) chunk[k][j - c0] += p[k];
        }
      for (int k = 0; k < K; ++k)
        for (Index j = c0; j < c1; ++j) acc[k][j - c0] += chunk[k][j - c0];
    }
  }

  // body(c0, c1) for consecutive channel blocks [c0, c1), the blocks in parallel.
  template <class F>
  static void for_channel_blocks(Index n, Index c, Index s, F&& body) {
    const Index cb = std::max<Index>(1, kChannelBlock / std::max<Index>(s, 1));
    const Index blocks = (c + cb - 1) / cb;
    parallel_for(
        blocks, [&](Index blk) { body(blk * cb, std::min(c, blk * cb + cb)); }, task_grain(blocks, n * s * cb));
  }
  // Rows of s elements: parallel once the loop has about kParallelGrain elements.
  static Index row_grain(Index s) { return s >= kParallelGrain ? 1 : kParallelGrain / (s > 0 ? s : 1); }
  // `tasks` tasks of `work` elements each: parallel when the total is large enough and there are two tasks.
  static Index task_grain(Index tasks, Index work) { return tasks * work >= kParallelGrain ? 2 : tasks + 1; }
};

}  // namespace dino::cpu

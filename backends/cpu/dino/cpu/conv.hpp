// CPU 2-d convolution, torch.nn.functional.conv2d and its backward (NCHW, groups 1, dilation 1): register-tiled
// GEMM kernels (GCC/Clang vector extensions) that read im2col rows as offsets into "shift planes", the input
// shifted along the width per kernel column and stride phase; chunks of images run on the OpenMP threads.
#pragma once
#include <algorithm>
#include <cstring>
#include <utility>

#include "dino/core/math.hpp"
#include "dino/cpu/parallel.hpp"

namespace dino::cpu {

namespace conv_detail {

// Vector width: the widest the target has (AVX-512 also brings the 32 vector registers the tiles below use;
// the other targets have 16).
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <class T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(kVecBytes)));
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(kVecBytes)));
};
template <class T>
using Vec = typename Simd<T>::V;
template <class T>
constexpr Index kLanes = kVecBytes / static_cast<Index>(sizeof(T));

template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline Vec<T> splat(T s) {
  return s - Vec<T>{};  // s - 0 is s for every s, so this folds to a broadcast
}
// The sum of the lanes by a fixed tree: halves added pairwise until one lane is left.
template <class T, std::size_t... I>
inline T lane_sum(Vec<T> v, std::index_sequence<I...>) {
  constexpr Index N = kLanes<T>;
  if constexpr (N >= 16) v += __builtin_shufflevector(v, v, ((I + 8) % N)...);
  if constexpr (N >= 8) v += __builtin_shufflevector(v, v, ((I + 4) % N)...);
  if constexpr (N >= 4) v += __builtin_shufflevector(v, v, ((I + 2) % N)...);
  v += __builtin_shufflevector(v, v, ((I + 1) % N)...);
  return v[0];
}
template <class T>
inline T lane_sum(Vec<T> v) {
  return lane_sum<T>(v, std::make_index_sequence<static_cast<std::size_t>(kLanes<T>)>{});
}

inline Index round_up(Index n, Index m) { return (n + m - 1) / m * m; }
// Scratch regions start on 64-byte boundaries.
template <class T>
inline Index aligned(Index n) {
  return round_up(n, 64 / static_cast<Index>(sizeof(T)));
}

// [lo, hi): the output columns ox whose input column ox * s + j - p lies in [0, w).
inline void valid_columns(Index j, Index s, Index p, Index w, Index ow, Index& lo, Index& hi) {
  if (s == 1) {  // no division on the common path
    lo = std::clamp<Index>(p - j, 0, ow);
    hi = std::clamp<Index>(w + p - j, lo, ow);
    return;
  }
  const Index a = p - j;
  lo = a <= 0 ? 0 : (a + s - 1) / s;
  const Index b = w - 1 + p - j;
  hi = b < 0 ? 0 : std::min(ow, b / s + 1);
  lo = std::min(lo, hi);
}

// The shift planes of one image for window g: plane (ci, j, phase) holds, at (y, ox) for y < rows and
// ox < ow, x[ci, sh * y + phase - ph, sw * ox + j - pw] (zero outside the input). The im2col row
// (ci, i, j) of output pixel (oy, ox) is then plane (ci, j, i % sh) at (oy + i / sh, ox): with planes as wide
// as the output, a contiguous run of the plane starting at offset(ci, i, j).
struct Shifts {
  Index phases = 1, rows = 0, plane = 0, size = 0;
  Shifts(const math::Window2d& g) {
    phases = std::min(g.sh, g.kh);
    rows = g.oh + (g.kh - 1) / g.sh;
    plane = rows * g.ow;
    size = g.c * g.kw * phases * plane;
  }
  Index offset(const math::Window2d& g, Index ci, Index i, Index j) const {
    return ((ci * g.kw + j) * phases + i % g.sh) * plane + (i / g.sh) * g.ow;
  }
};

// Fills the shift planes s of image x [c, h, w] (channels in parallel unless inside a region).
template <class T>
void lower(const math::Window2d& g, const Shifts& sp, const T* x, T* s) {
  const Index grain = std::max<Index>(1, kParallelGrain / std::max<Index>(g.kw * sp.phases * sp.plane, 1));
  if (g.sh == 1 && g.sw == 1 && g.ow == g.w) {
    // Stride 1 and the output as wide as the input: a plane is the input moved by a constant, out[e] =
    // in[e + shift] for e = y * w + ox in the rows y in [y0, y1) inside the input. One copy, then zeros
    // where rows wrapped around.
    const Index hw = g.h * g.w, y0 = std::clamp<Index>(g.ph, 0, sp.rows),
                y1 = std::clamp<Index>(g.h + g.ph, y0, sp.rows);
    parallel_for(
        g.c,
        [=, &sp](Index ci) {
          const T* in = x + ci * hw;
          T* out = s + ci * g.kw * sp.plane;
          for (Index j = 0; j < g.kw; ++j, out += sp.plane) {
            Index lo, hi;
            valid_columns(j, Index(1), g.pw, g.w, g.ow, lo, hi);
            const Index shift = j - g.pw - g.ph * g.w;
            const Index first = std::max(y0 * g.w, -shift), last = std::max(first, std::min(y1 * g.w, hw - shift));
            std::fill(out, out + first, T(0));
            if (last > first)
              std::memcpy(out + first, in + (first + shift), static_cast<std::size_t>(last - first) * sizeof(T));
            std::fill(out + last, out + sp.plane, T(0));
            for (Index y = y0; y < y1; ++y) {
              T* r = out + y * g.w;
              for (Index ox = 0; ox < lo; ++ox) r[ox] = T(0);
              for (Index ox = hi; ox < g.w; ++ox) r[ox] = T(0);
            }
          }
        },
        grain);
    return;
  }
  parallel_for(
      g.c * g.kw * sp.phases,
      [=, &sp](Index p) {
        const Index phase = p % sp.phases, j = (p / sp.phases) % g.kw, ci = p / (sp.phases * g.kw);
        Index lo, hi;
        valid_columns(j, g.sw, g.pw, g.w, g.ow, lo, hi);
        const T* in = x + ci * g.h * g.w;
        T* out = s + p * sp.plane;
        for (Index y = 0; y < sp.rows; ++y, out += g.ow) {
          const Index iy = g.sh * y + phase - g.ph;
          if (iy < 0 || iy >= g.h || lo >= hi) {
            std::fill(out, out + g.ow, T(0));
            continue;
          }
          const T* row = in + iy * g.w;
          std::fill(out, out + lo, T(0));
          const Index x0 = g.sw * lo + j - g.pw;
          if (g.sw == 1) {
            for (Index ox = lo; ox < hi; ++ox) out[ox] = row[x0 + (ox - lo)];
          } else {
            for (Index ox = lo; ox < hi; ++ox) out[ox] = row[x0 + (ox - lo) * g.sw];
          }
          std::fill(out + hi, out + g.ow, T(0));
        }
      },
      std::max<Index>(1, kParallelGrain / std::max<Index>(sp.plane, 1)));
}

// The im2col row offsets of window g, row (ci, i, j) = ci * kh * kw + i * kw + j.
inline void row_offsets(const math::Window2d& g, const Shifts& sp, Index* off) {
  for (Index ci = 0; ci < g.c; ++ci)
    for (Index i = 0; i < g.kh; ++i)
      for (Index j = 0; j < g.kw; ++j) off[(ci * g.kh + i) * g.kw + j] = sp.offset(g, ci, i, j);
}

// A GEMM register tile: MR rows x NV vectors of columns.
template <class T, int MR_, int NV_>
struct Tile {
  static constexpr int MR = MR_, NV = NV_;
  static constexpr Index NR = NV_ * kLanes<T>;
};

// Calls f(Tile) with the tile that wastes the least work on an [m, cols] product (rows padded to MR,
// columns to NR), larger tiles first on ties.
template <class T, class F>
void with_tile(Index m, Index cols, F&& f) {
#if defined(__AVX512F__)
  using A = Tile<T, 8, 3>;
  using B = Tile<T, 6, 4>;
  using C = Tile<T, 12, 2>;
  using D = Tile<T, 4, 4>;
#else
  using A = Tile<T, 4, 3>;
  using B = Tile<T, 3, 4>;
  using C = Tile<T, 6, 2>;
  using D = Tile<T, 2, 4>;
#endif
  auto work = [&](Index mr, Index nr) { return round_up(m, mr) * round_up(cols, nr); };
  const Index wa = work(A::MR, A::NR), wb = work(B::MR, B::NR), wc = work(C::MR, C::NR), wd = work(D::MR, D::NR);
  const Index best = std::min({wa, wb, wc, wd});
  if (wa == best)
    f(A{});
  else if (wb == best)
    f(B{});
  else if (wc == best)
    f(C{});
  else
    f(D{});
}

// The left GEMM operand in row blocks of MR: out[block][k][i] = a(block * MR + i, k), zero past m rows.
template <int MR, class T, class A>
void pack_a(Index m, Index k, A&& a, T* out) {
  for (Index b = 0; b < (m + MR - 1) / MR; ++b)
    for (Index kk = 0; kk < k; ++kk)
      for (Index i = 0; i < MR; ++i) {
        const Index row = b * MR + i;
        out[(b * k + kk) * MR + i] = row < m ? a(row, kk) : T(0);
      }
}

// tile [MR][NR] = a [k][MR] times the rows b + off[kk], NR wide.
template <class T, class Tl>
inline void gemm_tile(Index k, const T* a, const T* b, const Index* off, T* tile) {
  constexpr int MR = Tl::MR, NV = Tl::NV;
  constexpr Index L = kLanes<T>;
  Vec<T> acc[MR][NV] = {};
  for (Index kk = 0; kk < k; ++kk) {
    const T* br = b + off[kk];
    Vec<T> bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = load(br + v * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Vec<T> ai = splat(a[kk * MR + i]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) std::memcpy(tile + i * Tl::NR + v * L, &acc[i][v], sizeof(Vec<T>));
}

// out[m, cols] = a [m, k] * B with a packed by pack_a<MR> and B's row kk the contiguous run at b + off[kk]
// (read up to the next multiple of NR columns). store(row, c, values, n) takes n results of row `row` from
// column c. Column panels in parallel unless inside a region.
template <class Tl, class T, class S>
void gemm(Index m, Index k, Index cols, const T* a, const T* b, const Index* off, S&& store) {
  constexpr Index NR = Tl::NR;
  const Index n_panels = (cols + NR - 1) / NR, m_blocks = (m + Tl::MR - 1) / Tl::MR;
  parallel_for(
      n_panels,
      [&](Index q) {
        alignas(64) T tile[Tl::MR * NR];
        const Index c0 = q * NR, n = std::min(NR, cols - c0);
        for (Index mb = 0; mb < m_blocks; ++mb) {
          gemm_tile<T, Tl>(k, a + mb * k * Tl::MR, b + c0, off, tile);
          for (Index i = 0; i < Tl::MR && mb * Tl::MR + i < m; ++i) store(mb * Tl::MR + i, c0, tile + i * NR, n);
        }
      },
      std::max<Index>(1, 64 / std::max<Index>(m_blocks, 1)));
}

// Calls f(Tile) with the weight-gradient tile for m output channels (the vector dimension) and k im2col
// rows: the least padded work, larger tiles first on ties. MR row pointers live in general registers.
template <class T, class F>
void with_weight_tile(Index m, Index k, F&& f) {
#if defined(__AVX512F__)
  using A = Tile<T, 8, 1>;
  using B = Tile<T, 8, 2>;
  using C = Tile<T, 8, 3>;
  using D = Tile<T, 6, 4>;
#else
  using A = Tile<T, 8, 1>;
  using B = Tile<T, 6, 2>;
  using C = Tile<T, 4, 3>;
  using D = Tile<T, 3, 4>;
#endif
  auto work = [&](Index mr, Index nr) { return round_up(k, mr) * round_up(m, nr); };
  const Index wa = work(A::MR, A::NR), wb = work(B::MR, B::NR), wc = work(C::MR, C::NR), wd = work(D::MR, D::NR);
  const Index best = std::min({wa, wb, wc, wd});
  if (wd == best)
    f(D{});
  else if (wc == best)
    f(C{});
  else if (wb == best)
    f(B{});
  else
    f(A{});
}

// dyt [cols][ld] = dy [m][cols] transposed, zero in the columns m .. ld.
template <class T>
void transpose_rows(const T* dy, Index m, Index cols, Index ld, T* dyt) {
  if (ld > m)
    for (Index c = 0; c < cols; ++c)
      for (Index r = m; r < ld; ++r) dyt[c * ld + r] = T(0);
  for (Index r = 0; r < m; ++r) {
    const T* src = dy + r * cols;
    for (Index c = 0; c < cols; ++c) dyt[c * ld + r] = src[c];
  }
}

// dw [m, k] (+)= sum over images and columns c < cols of At(img)[c][r] * B(img, kk)[c], with
// At(img) = at + img * at_img (dy transposed, [cols][ld]) and B(img, kk) = b + img * b_img + off[kk] (im2col
// rows in shift planes). The tile keeps Tl::NR channels of dy in vectors and broadcasts Tl::MR im2col rows;
// each element sums images and columns in order.
template <class Tl, class T>
void weight_grad(Index m, Index k, Index cols, Index images, const T* at, Index at_img, Index ld, const T* b,
                 Index b_img, const Index* off, bool accumulate, T* dw) {
  constexpr int MR = Tl::MR, NV = Tl::NV;
  constexpr Index L = kLanes<T>, NR = Tl::NR;
  const Index m_panels = (m + NR - 1) / NR, k_blocks = (k + MR - 1) / MR;
  parallel_for(
      m_panels * k_blocks,
      [&](Index t) {
        // Consecutive tiles share their panel of dy (kept in cache) and stream the im2col rows.
        const Index mp = t / k_blocks, kb = t % k_blocks;
        // Rows past k repeat a valid row; their results are dropped.
        Index row_off[MR];
        for (int i = 0; i < MR; ++i) row_off[i] = off[std::min(kb * MR + i, k - 1)];
        Vec<T> acc[MR][NV] = {};
        for (Index img = 0; img < images; ++img) {
          const T* ap = at + img * at_img + mp * NR;
          const T* rows[MR];
          for (int i = 0; i < MR; ++i) rows[i] = b + img * b_img + row_off[i];
          for (Index c = 0; c < cols; ++c, ap += ld) {
            Vec<T> av[NV];
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) av[v] = load(ap + v * L);
#pragma GCC unroll 16
            for (int i = 0; i < MR; ++i) {
              const Vec<T> bi = splat(rows[i][c]);
#pragma GCC unroll 8
              for (int v = 0; v < NV; ++v) acc[i][v] += bi * av[v];
            }
          }
        }
        alignas(64) T tile[MR * NR];
        for (int i = 0; i < MR; ++i)
          for (int v = 0; v < NV; ++v) std::memcpy(tile + i * NR + v * L, &acc[i][v], sizeof(Vec<T>));
        for (Index r = mp * NR; r < std::min(m, mp * NR + NR); ++r)
          for (Index i = 0; i < MR && kb * MR + i < k; ++i) {
            T& d = dw[r * k + kb * MR + i];
            d = (accumulate ? d : T(0)) + tile[i * NR + (r - mp * NR)];
          }
      },
      std::max<Index>(1, 16 / std::max<Index>(k_blocks, 1)));
}

// dx [c, h, w] of one image = the sum of col's entries over the positions im2col reads them from
// (overwritten); col is [c * kh * kw, oh * ow]. Each input plane adds its kh * kw rows in (i, j) order.
template <class T>
void col2im(const math::Window2d& g, const T* col, T* dx) {
  const Index hw = g.oh * g.ow;
  parallel_for(
      g.c,
      [=](Index ci) {
        T* plane = dx + ci * g.h * g.w;
        std::fill(plane, plane + g.h * g.w, T(0));
        for (Index i = 0; i < g.kh; ++i)
          for (Index j = 0; j < g.kw; ++j) {
            Index lo, hi;
            valid_columns(j, g.sw, g.pw, g.w, g.ow, lo, hi);
            const T* src = col + ((ci * g.kh + i) * g.kw + j) * hw;
            for (Index oy = 0; oy < g.oh; ++oy, src += g.ow) {
              const Index iy = oy * g.sh + i - g.ph;
              if (iy < 0 || iy >= g.h) continue;
              T* out = plane + iy * g.w + (lo * g.sw + j - g.pw);
              for (Index ox = lo; ox < hi; ++ox) out[(ox - lo) * g.sw] += src[ox];
            }
          }
      },
      std::max<Index>(1, kParallelGrain / std::max<Index>(g.h * g.w * g.kh * g.kw, 1)));
}

// The sum of r[0, n) in a fixed order: by vector lanes, the lanes by a fixed tree, then the tail.
template <class T>
inline T row_sum(const T* r, Index n) {
  constexpr Index L = kLanes<T>;
  Vec<T> acc = {};
  Index i = 0;
  for (; i + L <= n; i += L) acc += load(r + i);
  T s = lane_sum<T>(acc);
  for (; i < n; ++i) s += r[i];
  return s;
}

// The chunk plan of one call: a function of the shapes only, so that the weight-gradient sums do not
// depend on the thread count.
struct Plan {
  Index images = 1;  // images per chunk
  Index chunks = 0;
  Index parts = 0;   // weight-gradient partial sums, each over a contiguous run of chunks
};
// A chunk's shift planes (or dy) of about this many elements stay in a core's L2 cache.
constexpr Index kChunkTarget = Index(1) << 18;
constexpr Index kMaxParts = 16;

inline Plan plan(const math::Window2d& g, const Shifts& sp, Index c_out) {
  Plan p;
  const Index per_image = std::max<Index>({sp.size, c_out * g.oh * g.ow, 1});
  p.images = std::clamp<Index>(kChunkTarget / per_image, 1, std::max<Index>(g.n, 1));
  p.chunks = (g.n + p.images - 1) / p.images;
  p.parts = std::min(p.chunks, kMaxParts);
  return p;
}
// First chunk of part q: the chunks are dealt in contiguous runs whose sizes differ by at most one.
inline Index part_begin(const Plan& p, Index q) { return q * p.chunks / p.parts; }

// Runs body(t, item) for item in [0, n): over the OpenMP threads (t = thread number) when there are enough
// items to keep them busy, else in order on the calling thread (whose inner loops then use the threads).
template <class F>
void for_chunks(Ctx<Cpu>& ctx, Index n, F&& body) {
  const int threads = ctx.threads();
#ifdef _OPENMP
  if (threads > 1 && n >= 2 * threads && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
#pragma omp for schedule(static)
      for (Index i = 0; i < n; ++i) body(t, i);
    }
    return;
  }
#endif
  for (Index i = 0; i < n; ++i) body(0, i);
}

// Carves typed regions out of one scratch buffer, each 64-byte aligned.
template <class T>
struct Carver {
  Index used = 0;
  Index take(Index n) {
    const Index at = used;
    used += aligned<T>(n);
    return at;
  }
  // Room for n Index values.
  Index take_indices(Index n) {
    constexpr Index size = sizeof(T), index_size = sizeof(Index);
    return take((n * index_size + size - 1) / size);
  }
};

// The convolution of one image with weights packed by pack_a<Tl::MR>: y [c_out, oh * ow] = conv(x) + bias.
// s is a workspace of sp.size + Tl::NR elements.
template <class Tl, class T>
void forward_image(const math::Window2d& g, const Shifts& sp, const Index* off, Index c_out, const T* x,
                   const T* a, const T* bias, T* s, T* y) {
  const Index hw = g.oh * g.ow;
  lower(g, sp, x, s);
  gemm<Tl>(c_out, g.c * g.kh * g.kw, hw, a, s, off, [&](Index row, Index c, const T* src, Index n) {
    T* dst = y + row * hw + c;
    const T b0 = bias ? bias[row] : T(0);
    for (Index t = 0; t < n; ++t) dst[t] = src[t] + b0;
  });
}

}  // namespace conv_detail

struct ConvOps {
  // x [n, c, h, w], weight [c_out, c, kh, kw], bias [c_out] or null -> y [n, c_out, oh, ow] (overwritten).
  template <class T>
  static void conv2d_forward(Ctx<Cpu>& ctx, const math::Window2d& g, Index c_out, const T* x, const T* weight,
                             const T* bias, T* y) {
    using namespace conv_detail;
    const Index hw = g.oh * g.ow, k = g.c * g.kh * g.kw;
    if (g.n == 0 || c_out == 0 || hw == 0) return;
    const Shifts sp(g);
    with_tile<T>(c_out, hw, [&](auto tile) {
      using Tl = decltype(tile);
      Carver<T> cv;
      const Index a_at = cv.take(round_up(c_out, Tl::MR) * k), off_at = cv.take_indices(k);
      const Index slot = aligned<T>(sp.size + Tl::NR), work_at = cv.take(slot * ctx.threads());
      T* base = ctx.scratch<T>(cv.used);
      T* a = base + a_at;
      Index* off = reinterpret_cast<Index*>(base + off_at);
      pack_a<Tl::MR>(c_out, k, [=](Index m, Index kk) { return weight[m * k + kk]; }, a);
      row_offsets(g, sp, off);
      for_chunks(ctx, g.n, [&](int t, Index img) {
        forward_image<Tl>(g, sp, off, c_out, x + img * g.c * g.h * g.w, a, bias, base + work_at + t * slot,
                          y + img * c_out * hw);
      });
    });
  }

  // Backward of conv2d_forward: adds into dweight [c_out, c, kh, kw] and dbias [c_out] (if not null);
  // overwrites dx [n, c, h, w] if not null. The weight and bias gradients are sums over chunks of images
  // in a fixed order, whatever the thread count.
  template <class T>
  static void conv2d_backward(Ctx<Cpu>& ctx, const math::Window2d& g, Index c_out, const T* x, const T* weight,
                              const T* dy, T* dx, T* dweight, T* dbias) {
    using namespace conv_detail;
    const Index hw = g.oh * g.ow, k = g.c * g.kh * g.kw, in_size = g.c * g.h * g.w;
    if (g.n == 0 || c_out == 0) return;
    if (hw == 0) {
      if (dx) std::fill(dx, dx + g.n * in_size, T(0));
      return;
    }
    const Shifts sp(g);
    const Plan p = plan(g, sp, c_out);
    // dx: with stride 1, the convolution of dy (padded by k - 1 - p) with the flipped, transposed kernel;
    // otherwise dy's columns through the transposed weights (dcol), folded back by col2im.
    const bool transposed_conv = g.sh == 1 && g.sw == 1;
    math::Window2d gt;
    gt.n = g.n;
    gt.c = c_out;
    gt.h = g.oh;
    gt.w = g.ow;
    gt.kh = g.kh;
    gt.kw = g.kw;
    gt.ph = g.kh - 1 - g.ph;
    gt.pw = g.kw - 1 - g.pw;
    gt.oh = g.h;
    gt.ow = g.w;
    const Shifts spt(gt);
    const Index kt = c_out * g.kh * g.kw;
    const Index dx_m = transposed_conv ? g.c : k, dx_k = transposed_conv ? kt : c_out;
    const Index dx_cols = transposed_conv ? g.h * g.w : hw;
    with_weight_tile<T>(c_out, k, [&](auto wtile) {
    with_tile<T>(dx_m, dx_cols, [&](auto tile) {
      using Wt = decltype(wtile);
      using Tl = decltype(tile);
      const Index wsize = c_out * k;
      Carver<T> cv;
      const Index part_size = aligned<T>(wsize) + aligned<T>(c_out);
      const Index parts_at = cv.take(part_size * p.parts);
      const Index off_at = cv.take_indices(k), offt_at = cv.take_indices(std::max(kt, c_out));
      const Index a_at = dx ? cv.take(round_up(dx_m, Tl::MR) * dx_k) : 0;
      // Per thread: the chunk's shift planes, then dx's workspace (shift planes of dy, or dy padded to whole
      // panels and dcol).
      const Index s_size = aligned<T>(sp.size);
      Index dx_size = 0;
      if (dx && transposed_conv) dx_size = aligned<T>(spt.size + Tl::NR);
      if (dx && !transposed_conv) dx_size = aligned<T>(c_out * round_up(hw, Tl::NR)) + aligned<T>(k * hw);
      const Index wld = round_up(c_out, Wt::NR), dyt_size = aligned<T>(hw * wld);
      const Index slot = (s_size + dyt_size) * p.images + dx_size, work_at = cv.take(slot * ctx.threads());
      T* base = ctx.scratch<T>(cv.used);
      T* parts = base + parts_at;
      Index* off = reinterpret_cast<Index*>(base + off_at);
      Index* offt = reinterpret_cast<Index*>(base + offt_at);
      T* a = base + a_at;
      row_offsets(g, sp, off);
      if (dx && transposed_conv) {
        row_offsets(gt, spt, offt);
        pack_a<Tl::MR>(g.c, kt, [=](Index ci, Index r) {
          const Index j = r % g.kw, i = (r / g.kw) % g.kh, co = r / (g.kw * g.kh);
          return weight[((co * g.c + ci) * g.kh + (g.kh - 1 - i)) * g.kw + (g.kw - 1 - j)];
        }, a);
      } else if (dx) {
        for (Index co = 0; co < c_out; ++co) offt[co] = co * round_up(hw, Tl::NR);
        pack_a<Tl::MR>(k, c_out, [=](Index r, Index co) { return weight[co * k + r]; }, a);
      }

      for_chunks(ctx, p.parts, [&](int t, Index q) {
        T* s = base + work_at + t * slot;
        T* dyt = s + s_size * p.images;
        T* dxw = dyt + dyt_size * p.images;
        T* dw = parts + q * part_size;
        T* db = dw + aligned<T>(wsize);
        const Index c0 = part_begin(p, q), c1 = part_begin(p, q + 1);
        for (Index chunk = c0; chunk < c1; ++chunk) {
          const Index img0 = chunk * p.images, images = std::min(p.images, g.n - img0);
          const T* dyc = dy + img0 * c_out * hw;
          for (Index img = 0; img < images; ++img) {
            lower(g, sp, x + (img0 + img) * in_size, s + img * s_size);
            transpose_rows(dyc + img * c_out * hw, c_out, hw, wld, dyt + img * dyt_size);
          }
          weight_grad<Wt>(c_out, k, hw, images, dyt, dyt_size, wld, s, s_size, off, chunk != c0, dw);
          if (dbias)
            for (Index co = 0; co < c_out; ++co) {
              T sum = chunk == c0 ? T(0) : db[co];
              for (Index img = 0; img < images; ++img) sum += row_sum(dyc + (img * c_out + co) * hw, hw);
              db[co] = sum;
            }
          if (!dx) continue;
          for (Index img = 0; img < images; ++img) {
            const T* dyi = dyc + img * c_out * hw;
            T* dxi = dx + (img0 + img) * in_size;
            if (transposed_conv) {
              forward_image<Tl>(gt, spt, offt, g.c, dyi, a, static_cast<const T*>(nullptr), dxw, dxi);
              continue;
            }
            // dy with rows padded to whole panels (the GEMM reads them whole), then dcol [k, hw] and col2im.
            const Index ld = round_up(hw, Tl::NR);
            T* dyp = dxw;
            T* dcol = dxw + aligned<T>(c_out * ld);
            for (Index co = 0; co < c_out; ++co) {
              std::memcpy(dyp + co * ld, dyi + co * hw, static_cast<std::size_t>(hw) * sizeof(T));
              std::fill(dyp + co * ld + hw, dyp + co * ld + ld, T(0));
            }
            gemm<Tl>(k, c_out, hw, a, dyp, offt, [&](Index row, Index c, const T* src, Index n) {
              std::memcpy(dcol + row * hw + c, src, static_cast<std::size_t>(n) * sizeof(T));
            });
            col2im(g, dcol, dxi);
          }
        }
      });
      // The partial sums in part order.
      const Index n_parts = p.parts;
      parallel_for(wsize, [=](Index i) {
        T sum = parts[i];
        for (Index q = 1; q < n_parts; ++q) sum += parts[q * part_size + i];
        dweight[i] += sum;
      });
      if (dbias)
        for (Index co = 0; co < c_out; ++co) {
          const T* db0 = parts + aligned<T>(wsize) + co;
          T sum = db0[0];
          for (Index q = 1; q < n_parts; ++q) sum += db0[q * part_size];
          dbias[co] += sum;
        }
    });
    });
  }
};

}  // namespace dino::cpu

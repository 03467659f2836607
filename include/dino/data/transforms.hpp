// Image transforms with explicit parameters, on 8-bit HWC images, bit-compatible with torchvision 0.14
// applied to PIL images (Pillow 9.4): resized_crop/resize (PIL's antialiased bilinear resample), hflip,
// RandomCrop's pad+crop, F.adjust_* (PIL ImageEnhance, HSV), grayscale, solarize, F.gaussian_blur, ToTensor+Normalize.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/data/image.hpp"

namespace dino {

// A crop rectangle in pixels, as torchvision's (i, j, h, w).
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};

namespace detail {

inline std::uint8_t clamp_u8(int v) { return static_cast<std::uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// --- PIL's resample (Resample.c), bilinear filter, 8-bit path -------------------------------------------------
// Fixed-point weights with PIL's 22 fraction bits (32 - 8 - 2): sums of 8-bit pixels times weights fit in int32.
constexpr int kResampleBits = 22;

// The taps of one axis: output index o reads count[o] inputs from first[o] with weights k[o * ksize + t].
struct ResampleAxis {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<std::int32_t> k;
  std::vector<double> scratch;
};

inline double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// PIL's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size) -> out_size: when downscaling the
// filter support widens by the scale (antialiasing). The order of the floating-point operations is PIL's.
inline void bilinear_axis(int in_size, int out_size, ResampleAxis& ax) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  const double ss = 1.0 / filterscale;
  ax.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  ax.first.assign(out_size, 0);
  ax.count.assign(out_size, 0);
  ax.k.assign(static_cast<std::size_t>(out_size) * ax.ksize, 0);
  ax.scratch.assign(ax.ksize, 0.0);
  for (int o = 0; o < out_size; ++o) {
    const double center = (o + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bilinear_filter((static_cast<double>(x + xmin) - center + 0.5) * ss);
      ax.scratch[x] = w;
      ww += w;
    }
    std::int32_t* k = &ax.k[static_cast<std::size_t>(o) * ax.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? ax.scratch[x] / ww : ax.scratch[x];
      const double scaled = w * static_cast<double>(1 << kResampleBits);  // exact: a power of two
      k[x] = static_cast<std::int32_t>(w < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    ax.first[o] = xmin;
    ax.count[o] = xmax;
  }
}

// The weights of both axes of a resize, computed once per thread and kept: random crops revisit the same
// few (box side, output side) pairs. Map nodes stay put when others are added, so both references stay valid.
inline std::pair<const ResampleAxis*, const ResampleAxis*> cached_bilinear_axes(int in_w, int out_w, int in_h, int out_h) {
  thread_local std::map<std::pair<int, int>, ResampleAxis> cache;
  if (cache.size() > 4096) cache.clear();
  auto get = [&](int in, int out) -> const ResampleAxis* {
    auto [it, added] = cache.try_emplace({in, out});
    if (added) bilinear_axis(in, out, it->second);
    return &it->second;
  };
  const ResampleAxis* h = get(in_w, out_w);
  return {h, get(in_h, out_h)};
}

// PIL's clip8: the accumulator started at half a unit, so the shift rounds to nearest. Bilinear weights are
// non-negative, so only the upper end can overflow (fixed-point weights may sum to slightly above one).
inline std::uint8_t resample_clip(std::int32_t acc) {
  const std::int32_t v = acc >> kResampleBits;
  return static_cast<std::uint8_t>(v > 255 ? 255 : (v < 0 ? 0 : v));
}
constexpr std::int32_t kResampleHalf = 1 << (kResampleBits - 1);

// One output column of the horizontal pass over all rows, with N taps known at compile time (N = 0: any count):
// iterating rows innermost keeps the weights in registers and the iterations independent.
template <int C, int N>
void resample_column(const std::uint8_t* src, std::size_t src_stride, int rows, std::uint8_t* dst, std::size_t dst_stride,
                     const std::int32_t* k, int n) {
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* p = src + static_cast<std::size_t>(y) * src_stride;
    std::uint8_t* d = dst + static_cast<std::size_t>(y) * dst_stride;
    for (int ch = 0; ch < C; ++ch) {
      std::int32_t acc = kResampleHalf;
      if constexpr (N > 0) {
        for (int t = 0; t < N; ++t) acc += static_cast<std::int32_t>(p[t * C + ch]) * k[t];
      } else {
        for (int t = 0; t < n; ++t) acc += static_cast<std::int32_t>(p[t * C + ch]) * k[t];
      }
      d[ch] = resample_clip(acc);
    }
  }
}

// Horizontal pass: rows x (in columns) -> rows x out_w, C channels; src/dst strides in bytes.
template <int C>
void resample_horizontal(const std::uint8_t* src, std::size_t src_stride, int rows, std::uint8_t* dst,
                         std::size_t dst_stride, int out_w, const ResampleAxis& ax) {
  for (int o = 0; o < out_w; ++o) {
    const std::int32_t* k = &ax.k[static_cast<std::size_t>(o) * ax.ksize];
    const std::uint8_t* s = src + static_cast<std::size_t>(ax.first[o]) * C;
    std::uint8_t* d = dst + static_cast<std::size_t>(o) * C;
    switch (const int n = ax.count[o]) {
      case 1: resample_column<C, 1>(s, src_stride, rows, d, dst_stride, k, n); break;
      case 2: resample_column<C, 2>(s, src_stride, rows, d, dst_stride, k, n); break;
      case 3: resample_column<C, 3>(s, src_stride, rows, d, dst_stride, k, n); break;
      case 4: resample_column<C, 4>(s, src_stride, rows, d, dst_stride, k, n); break;
      default: resample_column<C, 0>(s, src_stride, rows, d, dst_stride, k, n); break;
    }
  }
}

// Vertical pass over rows of `row_bytes` bytes: row o of dst mixes rows first[o] - shift.. of src (src starts at
// row `shift` of the axis). Up to 3 taps in one vectorised sweep; more through an int32 row accumulator.
inline void resample_vertical(const std::uint8_t* src, std::size_t src_stride, std::size_t row_bytes, std::uint8_t* dst,
                              std::size_t dst_stride, int out_h, const ResampleAxis& ax, int shift = 0) {
  thread_local std::vector<std::int32_t> acc_buffer;
  std::vector<std::int32_t>& acc = acc_buffer;
  for (int o = 0; o < out_h; ++o) {
    const std::int32_t* k = &ax.k[static_cast<std::size_t>(o) * ax.ksize];
    const int n = ax.count[o];
    const std::uint8_t* s0 = src + static_cast<std::size_t>(ax.first[o] - shift) * src_stride;
    std::uint8_t* d = dst + static_cast<std::size_t>(o) * dst_stride;
    if (n <= 3) {
      const std::uint8_t* s1 = n > 1 ? s0 + src_stride : s0;
      const std::uint8_t* s2 = n > 2 ? s0 + 2 * src_stride : s0;
      const std::int32_t k0 = k[0], k1 = n > 1 ? k[1] : 0, k2 = n > 2 ? k[2] : 0;
      for (std::size_t x = 0; x < row_bytes; ++x)
        d[x] = resample_clip(kResampleHalf + static_cast<std::int32_t>(s0[x]) * k0 + static_cast<std::int32_t>(s1[x]) * k1 +
                             static_cast<std::int32_t>(s2[x]) * k2);
      continue;
    }
    acc.assign(row_bytes, kResampleHalf);
    for (int t = 0; t < n; ++t) {
      const std::uint8_t* s = s0 + static_cast<std::size_t>(t) * src_stride;
      const std::int32_t kt = k[t];
      for (std::size_t x = 0; x < row_bytes; ++x) acc[x] += static_cast<std::int32_t>(s[x]) * kt;
    }
    for (std::size_t x = 0; x < row_bytes; ++x) d[x] = resample_clip(acc[x]);
  }
}

inline void resample_horizontal_any(int c, const std::uint8_t* src, std::size_t src_stride, int rows, std::uint8_t* dst,
                                    std::size_t dst_stride, int out_w, const ResampleAxis& ax) {
  switch (c) {
    case 1: resample_horizontal<1>(src, src_stride, rows, dst, dst_stride, out_w, ax); break;
    case 3: resample_horizontal<3>(src, src_stride, rows, dst, dst_stride, out_w, ax); break;
    case 4: resample_horizontal<4>(src, src_stride, rows, dst, dst_stride, out_w, ax); break;
    default: fail("resize: images with ", c, " channels are not supported (1, 3 or 4)");
  }
}

// --- PIL's colour arithmetic ----------------------------------------------------------------------------------
// convert('L'): ITU-R 601-2 luma in PIL's 16-bit fixed point (weights sum to 65536), rounded.
inline int luma(int r, int g, int b) {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

// Image.blend(im1, im2, alpha) per byte: im1 + alpha * (im2 - im1) in single precision (PIL's alpha is a C
// float), truncated. `alpha` is the float value held in a double: the product of a float and an integer below 2^9
// is exact in double, so rounding it to float is PIL's float multiply. PIL clips only when alpha is outside
// [0, 1]; inside, the result lies between im1 and im2 already, so clipping always changes nothing there.
inline int blend_byte(int in1, int in2, double alpha) {
  const float v = static_cast<float>(in1) + static_cast<float>(alpha * (in2 - in1));
  return static_cast<int>(std::min(std::max(v, 0.0f), 255.0f));
}
inline double blend_alpha(double factor) { return static_cast<float>(factor); }

// Image.blend over n bytes: out = blend(in1, in2, alpha).
inline void blend_u8(const std::uint8_t* in1, const std::uint8_t* in2, std::uint8_t* out, std::size_t n, double alpha) {
  const double a = blend_alpha(alpha);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(blend_byte(in1[i], in2[i], a));
}

// Blend of every byte with the constant im1 = `level` (brightness: black; contrast: the mean grey).
inline void blend_with_level(std::uint8_t* px, std::size_t n, int level, double alpha) {
  const double a = blend_alpha(alpha);
  for (std::size_t i = 0; i < n; ++i) px[i] = static_cast<std::uint8_t>(blend_byte(level, px[i], a));
}

// C's round() (half away from zero) for 0 <= x < 2^31, as trunc(x + 0.5): the sum is exact except just below
// 0.5, where x + 0.5 can round up to 1; PIL's HSV products never land there (the exhaustive parity test checks
// every HSV triple), and this vectorises where floor-based rounding costs twice as much.
inline int round_nonneg(double x) { return static_cast<int>(x + 0.5); }

// PIL's convert('HSV') of one pixel (Convert.c rgb2hsv, after colorsys), with PIL's float and double steps.
// Branch-free so that loops over pixels vectorise: GCC keeps a conversion or division that only one arm of a
// select needs out of if-conversion (it "could trap"), so every case is computed and picked by 0/1 weights.
inline void rgb_to_hsv(int r, int g, int b, int& h, int& s, int& v) {
  const int maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
  const int colour = maxc != minc;
  const float cr = static_cast<float>(std::max(maxc - minc, 1));  // any non-zero value does for grey pixels
  const float sf = static_cast<float>(maxc - minc) / static_cast<float>(std::max(maxc, 1));
  // PIL's (maxc - x) / cr is 0 for the largest channel and exactly 1 for the smallest: one division remains.
  const float mc = static_cast<float>(maxc - (r + g + b - maxc - minc)) / cr;
  auto pick = [&](int x) {  // 0 for maxc, 1 for minc, else mc, by exact 0/1 weights (all 0 for grey pixels)
    return static_cast<float>(x != maxc && x != minc) * mc + static_cast<float>(x == minc && x != maxc);
  };
  const float rc = pick(r), gc = pick(g), bc = pick(b);
  // PIL: bc - gc (float) if r is the max, else 2.0 + rc - bc, else 4.0 + gc - rc (double), stored as float. As
  // (d + x) - y in double: the 0/1 weights select exactly, and a difference of two such floats is exact in
  // double, so rounding it to float gives PIL's float subtraction.
  const int is_r = r == maxc, is_g = (1 - is_r) * (g == maxc), is_b = 1 - is_r - is_g;
  const double d = 2.0 * is_g + 4.0 * is_b;
  const double x = is_r * static_cast<double>(bc) + is_g * static_cast<double>(rc) + is_b * static_cast<double>(gc);
  const double y = is_r * static_cast<double>(gc) + is_g * static_cast<double>(bc) + is_b * static_cast<double>(rc);
  const float hf = static_cast<float>(d + x - y);
  // PIL's fmod(h / 6 + 1, 1): the argument lies in (0, 2), where subtracting 1 is exact.
  const double wrapped = hf / 6.0 + 1.0;
  const float hw = static_cast<float>(wrapped - (wrapped >= 1.0 ? 1.0 : 0.0));
  const int hi = static_cast<int>(hw * 255.0), si = static_cast<int>(sf * 255.0);
  h = std::min(std::max(hi, 0), 255) * colour;
  s = std::min(std::max(si, 0), 255) * colour;
  v = maxc;
}

// Per-hue and per-saturation terms of PIL's hsv2rgb, with PIL's values (looked up, not divided, per pixel).
struct HsvTables {
  std::array<int, 256> sector{};          // floor(h * 6 / 255) % 6
  std::array<float, 256> frac{}, sat{};   // h * 6 / 255 - floor(...) and s / 255, as PIL computes them
  HsvTables() {
    for (int x = 0; x < 256; ++x) {
      const double h6 = static_cast<float>(x) * 6.0 / 255.0;
      const int i = static_cast<int>(std::floor(h6));
      sector[x] = i % 6;
      frac[x] = static_cast<float>(h6 - static_cast<float>(i));
      sat[x] = static_cast<float>(static_cast<float>(x) / 255.0);
    }
  }
};
inline const HsvTables& hsv_tables() {
  static const HsvTables t;
  return t;
}

// PIL's HSV -> RGB of one pixel (Convert.c hsv2rgb), branch-free: PIL's switch on the sector becomes selects of
// integers, and PIL's special case s == 0 (r = g = b = v) needs none, since then p = q = t = v. Compilers may fuse
// `1 - fs * (1 - f)` into an FMA; the exhaustive parity test over every HSV triple shows no result changes.
inline void hsv_to_rgb(int h, int s, int v, int& r, int& g, int& b, const HsvTables& tab) {
  const float f = tab.frac[h], fs = tab.sat[s];
  const double fv = static_cast<double>(v);
  const int p = std::min(round_nonneg(fv * (1.0 - fs)), 255);
  const int q = std::min(round_nonneg(fv * (1.0 - static_cast<double>(fs * f))), 255);
  const int t = std::min(round_nonneg(fv * (1.0 - fs * (1.0 - f))), 255);
  const int sec = tab.sector[h];
  // Sectors 0..5 give (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q).
  r = (sec == 0 || sec == 5) ? v : (sec == 1 ? q : (sec == 4 ? t : p));
  g = sec == 0 ? t : ((sec == 1 || sec == 2) ? v : (sec == 3 ? q : p));
  b = (sec == 0 || sec == 1) ? p : (sec == 2 ? t : (sec == 5 ? q : v));
}

// The pixel loops run over planes of kHsvChunk pixels (deinterleaved ints), which vectorise.
constexpr int kHsvChunk = 256;

// convert('HSV') of n interleaved RGB pixels into n interleaved HSV pixels (in and out may be the same).
inline void rgb_to_hsv_pixels(const std::uint8_t* in, std::uint8_t* out, std::size_t n) {
  alignas(64) int a[kHsvChunk], b[kHsvChunk], c[kHsvChunk];
  for (std::size_t base = 0; base < n; base += kHsvChunk) {
    const int m = static_cast<int>(std::min<std::size_t>(kHsvChunk, n - base));
    const std::uint8_t* p = in + 3 * base;
    for (int j = 0; j < m; ++j) a[j] = p[3 * j], b[j] = p[3 * j + 1], c[j] = p[3 * j + 2];
    for (int j = 0; j < m; ++j) rgb_to_hsv(a[j], b[j], c[j], a[j], b[j], c[j]);
    std::uint8_t* o = out + 3 * base;
    for (int j = 0; j < m; ++j)
      o[3 * j] = static_cast<std::uint8_t>(a[j]), o[3 * j + 1] = static_cast<std::uint8_t>(b[j]),
      o[3 * j + 2] = static_cast<std::uint8_t>(c[j]);
  }
}

// HSV -> RGB of n interleaved pixels, the hue first shifted by `shift` modulo 256 (0 for a plain conversion).
inline void hsv_to_rgb_pixels(const std::uint8_t* in, std::uint8_t* out, std::size_t n, int shift = 0) {
  const HsvTables& tab = hsv_tables();
  alignas(64) int a[kHsvChunk], b[kHsvChunk], c[kHsvChunk];
  for (std::size_t base = 0; base < n; base += kHsvChunk) {
    const int m = static_cast<int>(std::min<std::size_t>(kHsvChunk, n - base));
    const std::uint8_t* p = in + 3 * base;
    for (int j = 0; j < m; ++j) a[j] = (p[3 * j] + shift) & 255, b[j] = p[3 * j + 1], c[j] = p[3 * j + 2];
    for (int j = 0; j < m; ++j) hsv_to_rgb(a[j], b[j], c[j], a[j], b[j], c[j], tab);
    std::uint8_t* o = out + 3 * base;
    for (int j = 0; j < m; ++j)
      o[3 * j] = static_cast<std::uint8_t>(a[j]), o[3 * j + 1] = static_cast<std::uint8_t>(b[j]),
      o[3 * j + 2] = static_cast<std::uint8_t>(c[j]);
  }
}

inline void check_colour(const Image& img, const char* op) {
  DINO_CHECK(img.c == 1 || img.c == 3, op, ": expects a grey or RGB image, got ", img.c, " channels");
  DINO_CHECK(img.px.size() == static_cast<std::size_t>(img.h) * img.w * img.c, op, ": the image holds ", img.px.size(),
             " bytes, not ", img.h, "x", img.w, "x", img.c);
}

inline void apply_lut(Image& img, const std::array<std::uint8_t, 256>& lut) {
  for (auto& p : img.px) p = lut[p];
}

}  // namespace detail

// PIL's img.crop(box).resize((out_w, out_h), BILINEAR), which is torchvision's F.resized_crop on PIL images:
// a separable bilinear resample whose support widens when downscaling (antialiasing), horizontal pass first,
// 8-bit rounding between the passes. The box must lie inside the image. Overwrites out with [out_h, out_w, c],
// reusing its buffer (so a loop over crops allocates nothing); out must not be img.
inline void resized_crop(const Image& img, const CropBox& box, int out_h, int out_w, Image& out) {
  DINO_CHECK(&out != &img, "resized_crop: the output image must not be the input image");
  DINO_CHECK(box.height > 0 && box.width > 0 && box.top >= 0 && box.left >= 0 && box.top + box.height <= img.h &&
                 box.left + box.width <= img.w,
             "resized_crop: crop box (top ", box.top, ", left ", box.left, ", height ", box.height, ", width ",
             box.width, ") does not lie inside the ", img.h, "x", img.w, " image");
  DINO_CHECK(out_h > 0 && out_w > 0, "resized_crop: output size ", out_h, "x", out_w, " must be positive");
  const int c = img.c;
  out.h = out_h, out.w = out_w, out.c = c;
  out.px.resize(static_cast<std::size_t>(out_h) * out_w * c);
  const std::size_t stride = static_cast<std::size_t>(img.w) * c;
  const std::uint8_t* origin = img.px.data() + static_cast<std::size_t>(box.top) * stride + static_cast<std::size_t>(box.left) * c;
  const std::size_t out_stride = static_cast<std::size_t>(out_w) * c;
  const bool need_h = out_w != box.width, need_v = out_h != box.height;
  thread_local std::vector<std::uint8_t> tmp;
  const auto [axes_h, axes_v] = detail::cached_bilinear_axes(box.width, need_h ? out_w : box.width, box.height,
                                                             need_v ? out_h : box.height);
  const detail::ResampleAxis& ax_h = *axes_h;
  const detail::ResampleAxis& ax_v = *axes_v;
  if (need_h && need_v) {
    // Only the rows the vertical pass reads go through the horizontal pass (as PIL's ybox_first/last).
    const int first = ax_v.first[0];
    const int last = ax_v.first[out_h - 1] + ax_v.count[out_h - 1];
    tmp.resize(static_cast<std::size_t>(last - first) * out_stride);
    detail::resample_horizontal_any(c, origin + static_cast<std::size_t>(first) * stride, stride, last - first,
                                    tmp.data(), out_stride, out_w, ax_h);
    detail::resample_vertical(tmp.data(), out_stride, out_stride, out.px.data(), out_stride, out_h, ax_v, first);
  } else if (need_h) {
    detail::resample_horizontal_any(c, origin, stride, out_h, out.px.data(), out_stride, out_w, ax_h);
  } else if (need_v) {
    detail::resample_vertical(origin, stride, out_stride, out.px.data(), out_stride, out_h, ax_v);
  } else {
    for (int y = 0; y < out_h; ++y) std::memcpy(out.px.data() + y * out_stride, origin + y * stride, out_stride);
  }
}

// The same, returning a new [out_h, out_w, c] image.
inline Image resized_crop(const Image& img, const CropBox& box, int out_h, int out_w) {
  Image out;
  resized_crop(img, box, out_h, out_w, out);
  return out;
}

// torchvision Resize(size) on PIL: the shorter side becomes `size`, the longer int(size * long / short)
// (truncated, as torchvision computes it); unchanged if already that size; bilinear, antialiased.
inline Image resize_shorter(const Image& img, int size) {
  DINO_CHECK(size > 0, "resize: size ", size, " must be positive");
  DINO_CHECK(img.h > 0 && img.w > 0, "resize: empty ", img.h, "x", img.w, " image");
  const int shorter = std::min(img.h, img.w), longer = std::max(img.h, img.w);
  const int new_long = static_cast<int>(static_cast<double>(static_cast<long long>(size) * longer) / shorter);
  const int out_h = img.w <= img.h ? new_long : size;
  const int out_w = img.w <= img.h ? size : new_long;
  if (out_h == img.h && out_w == img.w) return img;
  return resized_crop(img, CropBox{0, 0, img.h, img.w}, out_h, out_w);
}

namespace detail {
// Each row is copied out, then written back reversed (faster than swapping pairs of pixels in place).
template <int C>
void hflip_rows(std::uint8_t* px, int h, int w) {
  thread_local std::vector<std::uint8_t> copy;
  const std::size_t row_bytes = static_cast<std::size_t>(w) * C;
  copy.resize(row_bytes);
  std::uint8_t* t = copy.data();
  for (int y = 0; y < h; ++y) {
    std::uint8_t* row = px + static_cast<std::size_t>(y) * row_bytes;
    std::memcpy(t, row, row_bytes);
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < C; ++ch) row[x * C + ch] = t[static_cast<std::size_t>(w - 1 - x) * C + ch];
  }
}
}  // namespace detail

// PIL's FLIP_LEFT_RIGHT (torchvision F.hflip), in place.
inline void hflip(Image& img) {
  switch (img.c) {
    case 1: detail::hflip_rows<1>(img.px.data(), img.h, img.w); break;
    case 3: detail::hflip_rows<3>(img.px.data(), img.h, img.w); break;
    case 4: detail::hflip_rows<4>(img.px.data(), img.h, img.w); break;
    default: fail("hflip: images with ", img.c, " channels are not supported (1, 3 or 4)");
  }
}

// RandomCrop(size, padding=pad) given its offsets: pads every side by `pad` with zeros (F.pad, fill 0), then
// crops size x size at (top, left) of the padded image, whose offsets range over [0, h + 2 pad - size].
inline Image pad_crop(const Image& img, int size, int pad, int top, int left) {
  DINO_CHECK(size > 0 && pad >= 0, "pad_crop: size ", size, " and padding ", pad, " must be positive / non-negative");
  const int ph = img.h + 2 * pad, pw = img.w + 2 * pad;
  DINO_CHECK(size <= ph && size <= pw, "pad_crop: the ", size, "x", size, " crop is larger than the ", ph, "x", pw,
             " padded image (", img.h, "x", img.w, " padded by ", pad, ")");
  DINO_CHECK(top >= 0 && left >= 0 && top + size <= ph && left + size <= pw, "pad_crop: offset (", top, ", ", left,
             ") puts the ", size, "x", size, " crop outside the ", ph, "x", pw, " padded image");
  const int c = img.c;
  Image out(size, size, c);  // zero filled
  const int y0 = std::max(0, pad - top), y1 = std::min(size, pad + img.h - top);
  const int x0 = std::max(0, pad - left), x1 = std::min(size, pad + img.w - left);
  if (x1 <= x0) return out;
  for (int y = y0; y < y1; ++y)
    std::memcpy(&out.px[(static_cast<std::size_t>(y) * size + x0) * c],
                &img.px[(static_cast<std::size_t>(y + top - pad) * img.w + (x0 + left - pad)) * c],
                static_cast<std::size_t>(x1 - x0) * c);
  return out;
}

// F.adjust_brightness on PIL (ImageEnhance.Brightness): blend with black by `factor` (>= 0), in place.
inline void adjust_brightness(Image& img, double factor) {
  detail::check_colour(img, "adjust_brightness");
  DINO_CHECK(factor >= 0, "adjust_brightness: factor ", factor, " must be non-negative");
  detail::blend_with_level(img.px.data(), img.px.size(), 0, factor);
}

// F.adjust_contrast on PIL (ImageEnhance.Contrast): blend with the grey level int(mean(L) + 0.5) of the image.
inline void adjust_contrast(Image& img, double factor) {
  detail::check_colour(img, "adjust_contrast");
  DINO_CHECK(factor >= 0, "adjust_contrast: factor ", factor, " must be non-negative");
  const std::size_t n = static_cast<std::size_t>(img.h) * img.w;
  if (n == 0) return;
  std::uint64_t sum = 0;
  const std::uint8_t* p = img.px.data();
  if (img.c == 3)
    for (std::size_t i = 0; i < n; ++i) sum += detail::luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
  else
    for (std::size_t i = 0; i < n; ++i) sum += p[i];
  const int mean = static_cast<int>(static_cast<double>(sum) / static_cast<double>(n) + 0.5);
  detail::blend_with_level(img.px.data(), img.px.size(), mean, factor);
}

// F.adjust_saturation on PIL (ImageEnhance.Color): blend each pixel with its own luma (convert('L')).
inline void adjust_saturation(Image& img, double factor) {
  detail::check_colour(img, "adjust_saturation");
  DINO_CHECK(factor >= 0, "adjust_saturation: factor ", factor, " must be non-negative");
  if (img.c == 1) return;  // the degenerate image of a grey image is itself
  const double a = detail::blend_alpha(factor);
  std::uint8_t* p = img.px.data();
  for (std::size_t i = 0, n = static_cast<std::size_t>(img.h) * img.w; i < n; ++i) {
    const int r = p[3 * i], g = p[3 * i + 1], b = p[3 * i + 2];
    const int l = detail::luma(r, g, b);
    p[3 * i] = static_cast<std::uint8_t>(detail::blend_byte(l, r, a));
    p[3 * i + 1] = static_cast<std::uint8_t>(detail::blend_byte(l, g, a));
    p[3 * i + 2] = static_cast<std::uint8_t>(detail::blend_byte(l, b, a));
  }
}

// F.adjust_hue on PIL: RGB -> HSV (PIL), H += uint8(hue_factor * 255) with uint8 wrap-around (numpy's cast
// truncates toward zero), HSV -> RGB. The round trip is lossy even for a zero shift, as in torchvision.
inline void adjust_hue(Image& img, double hue_factor) {
  detail::check_colour(img, "adjust_hue");
  DINO_CHECK(hue_factor >= -0.5 && hue_factor <= 0.5, "adjust_hue: hue_factor ", hue_factor, " is not in [-0.5, 0.5]");
  if (img.c == 1) return;
  const int shift = static_cast<int>(hue_factor * 255) & 255;
  const std::size_t n = static_cast<std::size_t>(img.h) * img.w;
  detail::rgb_to_hsv_pixels(img.px.data(), img.px.data(), n);
  detail::hsv_to_rgb_pixels(img.px.data(), img.px.data(), n, shift);
}

// F.rgb_to_grayscale(img, num_output_channels=3) on PIL: convert('L') replicated to the 3 channels, in place.
inline void to_grayscale(Image& img) {
  detail::check_colour(img, "to_grayscale");
  if (img.c == 1) return;
  std::uint8_t* p = img.px.data();
  for (std::size_t i = 0, n = static_cast<std::size_t>(img.h) * img.w; i < n; ++i)
    p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = static_cast<std::uint8_t>(detail::luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]));
}

// PIL ImageOps.solarize (torchvision F.solarize): every byte >= threshold becomes 255 - byte.
inline void solarize(Image& img, int threshold) {
  std::array<std::uint8_t, 256> lut{};
  for (int v = 0; v < 256; ++v) lut[v] = static_cast<std::uint8_t>(v < threshold ? v : 255 - v);
  detail::apply_lut(img, lut);
}

// torchvision's 1-D Gaussian kernel, computed in float32 as _get_gaussian_kernel1d does.
inline std::vector<float> gaussian_kernel1d(int kernel_size, double sigma) {
  std::vector<float> k(kernel_size);
  const float half = static_cast<float>((kernel_size - 1) * 0.5);
  const float s = static_cast<float>(sigma);
  float sum = 0.0f;
  for (int i = 0; i < kernel_size; ++i) {
    const float x = (-half + static_cast<float>(i)) / s;
    k[i] = std::exp(-0.5f * (x * x));
    sum += k[i];
  }
  for (auto& v : k) v /= sum;
  return k;
}

// torchvision F.gaussian_blur on a PIL image: reflect padding by kernel_size / 2, the kernel
// outer(k1d, k1d), rounding half to even back to uint8. torchvision convolves with the 2-D kernel in float32;
// the separable sum here in double differs by float rounding only, which can flip a value lying within
// ~1e-4 of a half (off by one, rarely). Needs an odd kernel_size, sigma > 0 and both sides > kernel_size / 2.
inline void gaussian_blur(Image& img, int kernel_size, double sigma) {
  DINO_CHECK(kernel_size > 0 && kernel_size % 2 == 1, "gaussian_blur: kernel_size ", kernel_size,
             " must be odd and positive");
  DINO_CHECK(sigma > 0, "gaussian_blur: sigma ", sigma, " must be positive");
  const int r = kernel_size / 2, h = img.h, w = img.w, c = img.c;
  DINO_CHECK(r < h && r < w, "gaussian_blur: reflect padding by ", r, " needs an image larger than ", r, "x", r,
             ", got ", h, "x", w);
  const std::vector<float> kf = gaussian_kernel1d(kernel_size, sigma);
  const std::vector<double> kd(kf.begin(), kf.end());
  auto reflect = [](int i, int n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); };
  // Horizontal pass into `rows` (double), from a reflect-padded copy of each row so that the taps are
  // contiguous and the loops vectorise; then the vertical pass, rounded back to uint8.
  thread_local std::vector<double> rows, padded;
  const std::size_t row_len = static_cast<std::size_t>(w) * c;
  rows.resize(static_cast<std::size_t>(h) * row_len);
  padded.resize(static_cast<std::size_t>(w + 2 * r) * c);
  for (int y = 0; y < h; ++y) {
    const std::uint8_t* s = img.px.data() + y * row_len;
    for (int x = -r; x < w + r; ++x)
      for (int ch = 0; ch < c; ++ch) padded[static_cast<std::size_t>(x + r) * c + ch] = s[reflect(x, w) * c + ch];
    double* d = rows.data() + y * row_len;
    std::fill(d, d + row_len, 0.0);
    for (int t = 0; t < kernel_size; ++t) {
      const double kt = kd[t];
      const double* p = padded.data() + static_cast<std::size_t>(t) * c;
      for (std::size_t j = 0; j < row_len; ++j) d[j] += kt * p[j];
    }
  }
  thread_local std::vector<double> acc;
  acc.resize(row_len);
  for (int y = 0; y < h; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int t = 0; t < kernel_size; ++t) {
      const double* s = rows.data() + static_cast<std::size_t>(reflect(y + t - r, h)) * row_len;
      const double kt = kd[t];
      for (std::size_t x = 0; x < row_len; ++x) acc[x] += kt * s[x];
    }
    std::uint8_t* d = img.px.data() + y * row_len;
    for (std::size_t x = 0; x < row_len; ++x) d[x] = detail::clamp_u8(static_cast<int>(std::nearbyint(acc[x])));
  }
}

// ToTensor + Normalize: out[ch][y][x] = (px / 255 - mean[ch]) / std[ch], [C, H, W], for a 3-channel image.
// Computed in float32 exactly as torch does (ToTensor's float division, Normalize with float32 mean/std), then
// converted to T: the testbed's float64 mode converts the float32 tensor (ConvertImageDtype) after Normalize.
template <class T>
void to_normalized_chw(const Image& img, const std::array<double, 3>& mean, const std::array<double, 3>& std, T* out) {
  DINO_CHECK(img.c == 3, "to_normalized_chw: expects an RGB image, got ", img.c, " channels");
  const std::size_t plane = static_cast<std::size_t>(img.h) * img.w;
  const std::uint8_t* p = img.px.data();
  for (int ch = 0; ch < 3; ++ch) {
    DINO_CHECK(std[ch] != 0, "to_normalized_chw: std[", ch, "] is 0");
    // Divisions, not multiplications by reciprocals: torch divides, and the loop vectorises anyway.
    const float m = static_cast<float>(mean[ch]), s = static_cast<float>(std[ch]);
    T* o = out + ch * plane;
    for (std::size_t i = 0; i < plane; ++i) o[i] = static_cast<T>((static_cast<float>(p[3 * i + ch]) / 255.0f - m) / s);
  }
}

}  // namespace dino

// Unit tests of the image transforms (transforms.hpp) and the random augmentations (augment.hpp): exact
// properties of the primitives, error messages, and the distributions of the random draws (RandomResizedCrop
// geometry, flip / jitter / grayscale / blur / solarize rates, the `dino` RandomChoice) within ~4 standard errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dino/data/augment.hpp"
#include "dino/data/transforms.hpp"

using namespace dino;

namespace {

Image random_image(int h, int w, std::uint64_t seed) {
  Generator gen(seed, 99);
  Image img(h, w, 3);
  for (auto& p : img.px) p = static_cast<std::uint8_t>(gen.below(256));
  return img;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The observed rate of hits within k binomial standard errors of p.
void check_rate(const std::string& what, long hits, long n, double p, double k = 4.0) {
  REQUIRE(n > 0);
  const double rate = static_cast<double>(hits) / n;
  const double se = std::sqrt(p * (1 - p) / n);
  CHECK_MESSAGE(std::abs(rate - p) <= k * se + 1e-12, what, ": rate ", rate, " vs ", p, " (", n, " draws, se ", se, ")");
}

// A sample mean within k standard errors of mu, for draws of variance var.
void check_mean(const std::string& what, double sum, long n, double mu, double var, double k = 4.0) {
  const double mean = sum / n, se = std::sqrt(var / n);
  CHECK_MESSAGE(std::abs(mean - mu) <= k * se, what, ": mean ", mean, " vs ", mu, " (se ", se, ")");
}

}  // namespace

TEST_CASE("transforms: hflip and pad_crop rearrange pixels exactly") {
  const Image img = random_image(7, 5, 1);
  Image f = img;
  hflip(f);
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 5; ++x)
      for (int c = 0; c < 3; ++c) CHECK(f.at(y, x, c) == img.at(y, 4 - x, c));
  hflip(f);
  CHECK(f.px == img.px);

  const Image p = pad_crop(img, 6, 2, 1, 3);  // the padded image is 11x9
  REQUIRE(p.h == 6);
  REQUIRE(p.w == 6);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) {
      const int sy = y + 1 - 2, sx = x + 3 - 2;
      const bool inside = sy >= 0 && sy < 7 && sx >= 0 && sx < 5;
      for (int c = 0; c < 3; ++c) CHECK(p.at(y, x, c) == (inside ? img.at(sy, sx, c) : 0));
    }
  CHECK(pad_crop(img, 5, 0, 2, 0).px == resized_crop(img, CropBox{2, 0, 5, 5}, 5, 5).px);
  const Image corner = pad_crop(img, 2, 4, 0, 0);  // entirely in the padding
  CHECK(std::all_of(corner.px.begin(), corner.px.end(), [](std::uint8_t v) { return v == 0; }));

  CHECK(contains(error_of([&] { pad_crop(img, 12, 2, 0, 0); }), "larger than the 11x9 padded image"));
  CHECK(contains(error_of([&] { pad_crop(img, 6, 2, 6, 0); }), "offset (6, 0)"));
}

TEST_CASE("transforms: resized_crop and resize_shorter geometry") {
  const Image img = random_image(20, 30, 2);
  const Image crop = resized_crop(img, CropBox{3, 4, 10, 12}, 10, 12);  // no resampling: a plain crop
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 12; ++x) CHECK(crop.at(y, x, 1) == img.at(y + 3, x + 4, 1));
  // A constant image stays constant at every scale (the fixed-point weights sum to one within rounding).
  Image flat(9, 13, 3);
  std::fill(flat.px.begin(), flat.px.end(), std::uint8_t(201));
  for (auto [oh, ow] : {std::pair{4, 5}, std::pair{30, 7}, std::pair{1, 1}, std::pair{9, 40}}) {
    const Image r = resized_crop(flat, CropBox{0, 0, 9, 13}, oh, ow);
    CHECK(r.h == oh);
    CHECK(r.w == ow);
    CHECK(std::all_of(r.px.begin(), r.px.end(), [](std::uint8_t v) { return v == 201; }));
  }
  // Resize: the shorter side to `size`, the longer truncated as torchvision computes int(size * long / short).
  const Image a = resize_shorter(img, 28);  // 20x30 -> 28 x int(28 * 30 / 20) = 42
  CHECK((a.h == 28 && a.w == 42));
  const Image b = resize_shorter(random_image(37, 24, 3), 28);  // 28 * 37 / 24 = 43.17
  CHECK((b.h == 43 && b.w == 28));
  CHECK(resize_shorter(img, 20).px == img.px);

  // The out-parameter form reuses a buffer of any previous size and gives the same bytes.
  Image reused = random_image(40, 40, 14);
  for (const CropBox& b : {CropBox{1, 2, 17, 9}, CropBox{0, 0, 20, 30}, CropBox{5, 5, 3, 3}}) {
    resized_crop(img, b, 11, 13, reused);
    CHECK((reused.h == 11 && reused.w == 13 && reused.c == 3 && reused.px.size() == 11u * 13 * 3));
    CHECK(reused.px == resized_crop(img, b, 11, 13).px);
  }
  Image self = img;
  CHECK(contains(error_of([&] { resized_crop(self, CropBox{0, 0, 5, 5}, 4, 4, self); }), "must not be the input"));

  CHECK(contains(error_of([&] { resized_crop(img, CropBox{15, 0, 10, 10}, 4, 4); }), "does not lie inside the 20x30"));
  CHECK(contains(error_of([&] { resized_crop(img, CropBox{0, 0, 10, 10}, 0, 4); }), "output size 0x4"));
  CHECK(contains(error_of([&] { resize_shorter(img, 0); }), "size 0"));
}

TEST_CASE("transforms: colour adjustments, neutral factors and errors") {
  const Image img = random_image(6, 6, 4);
  Image x = img;
  adjust_brightness(x, 1.0);
  adjust_contrast(x, 1.0);
  adjust_saturation(x, 1.0);
  CHECK(x.px == img.px);  // factor 1 is a copy in PIL's blend
  adjust_brightness(x, 0.0);
  CHECK(std::all_of(x.px.begin(), x.px.end(), [](std::uint8_t v) { return v == 0; }));

  x = img;
  adjust_saturation(x, 0.0);
  Image g = img;
  to_grayscale(g);
  CHECK(x.px == g.px);  // saturation 0 is the greyscale image
  for (int i = 0; i < 36; ++i) CHECK((g.px[3 * i] == g.px[3 * i + 1] && g.px[3 * i] == g.px[3 * i + 2]));
  CHECK(detail::luma(255, 255, 255) == 255);
  CHECK(detail::luma(255, 0, 0) == 76);  // 0.299 * 255 = 76.2

  x = img;
  adjust_contrast(x, 0.0);  // a flat image at the rounded mean luma
  CHECK(std::all_of(x.px.begin(), x.px.end(), [&](std::uint8_t v) { return v == x.px[0]; }));

  x = img;
  solarize(x, 256);
  CHECK(x.px == img.px);
  solarize(x, 0);
  for (std::size_t i = 0; i < x.px.size(); ++i) CHECK(x.px[i] == 255 - img.px[i]);

  // Grey pixels have no hue: any shift leaves them unchanged.
  Image grey = img;
  to_grayscale(grey);
  x = grey;
  adjust_hue(x, 0.37);
  CHECK(x.px == grey.px);

  CHECK(contains(error_of([&] { adjust_hue(x, 0.6); }), "hue_factor 0.6 is not in [-0.5, 0.5]"));
  CHECK(contains(error_of([&] { adjust_brightness(x, -0.1); }), "adjust_brightness: factor -0.1"));
  Image four(2, 2, 4);
  CHECK(contains(error_of([&] { adjust_saturation(four, 1.2); }), "4 channels"));
}

TEST_CASE("transforms: gaussian blur kernel, constant images and errors") {
  const auto k = gaussian_kernel1d(9, 1.3);
  REQUIRE(k.size() == 9);
  double sum = 0;
  for (int i = 0; i < 9; ++i) {
    sum += k[i];
    CHECK(k[i] == doctest::Approx(k[8 - i]));
  }
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(k[4] > k[3]);

  Image flat(12, 10, 3);
  std::fill(flat.px.begin(), flat.px.end(), std::uint8_t(77));
  gaussian_blur(flat, 9, 2.0);
  CHECK(std::all_of(flat.px.begin(), flat.px.end(), [](std::uint8_t v) { return v == 77; }));
  // A tiny sigma leaves the image as it is (the kernel is a unit impulse in float32).
  const Image img = random_image(10, 10, 5);
  Image x = img;
  gaussian_blur(x, 9, 0.1);
  CHECK(x.px == img.px);

  CHECK(contains(error_of([&] { gaussian_blur(x, 8, 1.0); }), "kernel_size 8 must be odd"));
  CHECK(contains(error_of([&] { gaussian_blur(x, 9, 0.0); }), "sigma 0 must be positive"));
  Image small = random_image(4, 30, 6);
  CHECK(contains(error_of([&] { gaussian_blur(small, 9, 1.0); }), "got 4x30"));
}

TEST_CASE("transforms: ToTensor + Normalize layout and values") {
  const Image img = random_image(3, 4, 7);
  const std::array<double, 3> mean{0.4914, 0.4822, 0.4465}, std{0.247, 0.243, 0.261};
  std::vector<float> f(36);
  std::vector<double> d(36);
  to_normalized_chw<float>(img, mean, std, f.data());
  to_normalized_chw<double>(img, mean, std, d.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x) {
        const std::size_t i = (static_cast<std::size_t>(c) * 3 + y) * 4 + x;
        CHECK(f[i] == doctest::Approx((img.at(y, x, c) / 255.0 - mean[c]) / std[c]).epsilon(1e-6));
        CHECK(d[i] == static_cast<double>(f[i]));  // the testbed converts the float32 result to float64
      }
}

TEST_CASE("augment: RandomResizedCrop area fraction, log-aspect and offsets") {
  // A large image makes the rounding of w and h negligible; scale <= 0.4 always fits, so nothing is rejected.
  Generator gen(11, purpose::augment);
  const int H = 1000, W = 1000, n = 20000;
  const double lo = 0.05, hi = 0.4, lr = std::log(3.0 / 4.0), hr = std::log(4.0 / 3.0);
  double s_sum = 0, r_sum = 0, s_min = 1, s_max = 0, r_min = 1, r_max = -1, top_sum = 0, left_sum = 0;
  long offsets = 0;
  for (int i = 0; i < n; ++i) {
    const CropBox b = random_resized_crop_params(gen, H, W, lo, hi);
    REQUIRE((b.top >= 0 && b.left >= 0 && b.top + b.height <= H && b.left + b.width <= W && b.height > 0));
    const double s = double(b.height) * b.width / (double(H) * W), r = std::log(double(b.width) / b.height);
    s_sum += s, r_sum += r;
    s_min = std::min(s_min, s), s_max = std::max(s_max, s), r_min = std::min(r_min, r), r_max = std::max(r_max, r);
    top_sum += double(b.top) / (H - b.height), left_sum += double(b.left) / (W - b.width);
    ++offsets;
  }
  check_mean("area fraction", s_sum, n, (lo + hi) / 2, (hi - lo) * (hi - lo) / 12);
  check_mean("log aspect", r_sum, n, 0.0, (hr - lr) * (hr - lr) / 12);
  CHECK(s_min >= lo - 0.002);
  CHECK(s_min <= lo + 0.01);
  CHECK(s_max <= hi + 0.002);
  CHECK(s_max >= hi - 0.01);
  CHECK(r_min >= lr - 0.01);
  CHECK(r_min <= lr + 0.02);
  CHECK(r_max <= hr + 0.01);
  CHECK(r_max >= hr - 0.02);
  // The offset is uniform over the positions that fit: top / (H - h) has mean 1/2, variance ~1/12.
  check_mean("relative top", top_sum, offsets, 0.5, 1.0 / 12);
  check_mean("relative left", left_sum, offsets, 0.5, 1.0 / 12);

  // The full-image preset (scale 1, 1) on a square image: almost always the whole image.
  long whole = 0;
  for (int i = 0; i < 2000; ++i) {
    const CropBox b = random_resized_crop_params(gen, 32, 32, 1.0, 1.0);
    whole += b.height == 32 && b.width == 32;
    CHECK((b.top + b.height <= 32 && b.left + b.width <= 32));
  }
  CHECK(whole > 1000);
}

TEST_CASE("augment: RandomResizedCrop falls back to the ratio-clamped centre crop") {
  Generator gen(12, purpose::augment);
  // A 10x100 strip cannot hold 90% of its area at an aspect <= 4/3: every attempt fails.
  const CropBox wide = random_resized_crop_params(gen, 10, 100, 0.9, 1.0);
  CHECK(wide.height == 10);
  CHECK(wide.width == 13);  // round(10 * 4/3)
  CHECK(wide.top == 0);
  CHECK(wide.left == 43);  // (100 - 13) // 2
  const CropBox tall = random_resized_crop_params(gen, 100, 10, 0.9, 1.0);
  CHECK(tall.width == 10);
  CHECK(tall.height == 13);  // round(10 / (3/4))
  CHECK(tall.top == 43);
  CHECK(tall.left == 0);
  // An aspect already inside [3/4, 4/3] falls back to the whole image; scale > 1 never fits.
  const CropBox whole = random_resized_crop_params(gen, 30, 36, 1.5, 2.0);
  CHECK((whole.top == 0 && whole.left == 0 && whole.height == 30 && whole.width == 36));

  CHECK(contains(error_of([&] { random_resized_crop_params(gen, 10, 10, 0.5, 0.4); }), "scale (0.5, 0.4)"));
  CHECK(contains(error_of([&] { random_resized_crop_params(gen, 0, 10, 0.1, 0.4); }), "empty 0x10"));
  CHECK(contains(error_of([&] { random_resized_crop_params(gen, 10, 10, 0.1, 0.4, 0.0, 1.0); }), "ratio"));

  CropBox b;
  const Image out = random_resized_crop(random_image(32, 32, 8), gen, 20, 0.4, 1.0, &b);
  CHECK((out.h == 20 && out.w == 20));
  CHECK(b.height * b.width > 0);
}

TEST_CASE("augment: ColorJitter draws a uniform random order and factors in range") {
  Generator gen(13, purpose::augment);
  const int n = 24000;
  std::map<std::array<int, 4>, long> perms;
  double b_sum = 0, s_sum = 0, h_sum = 0;
  double b_min = 9, b_max = -9, c_min = 9, c_max = -9, s_min = 9, s_max = -9, h_min = 9, h_max = -9;
  for (int i = 0; i < n; ++i) {
    const JitterParams p = color_jitter_params(gen, 0.4, 0.4, 0.2, 0.1);
    ++perms[p.order];
    std::array<int, 4> sorted = p.order;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(sorted == std::array<int, 4>{0, 1, 2, 3});
    b_sum += p.brightness, s_sum += p.saturation, h_sum += p.hue;
    b_min = std::min(b_min, p.brightness), b_max = std::max(b_max, p.brightness);
    c_min = std::min(c_min, p.contrast), c_max = std::max(c_max, p.contrast);
    s_min = std::min(s_min, p.saturation), s_max = std::max(s_max, p.saturation);
    h_min = std::min(h_min, p.hue), h_max = std::max(h_max, p.hue);
  }
  CHECK(perms.size() == 24);
  for (const auto& [perm, count] : perms) check_rate("permutation", count, n, 1.0 / 24);
  CHECK((b_min >= 0.6 && b_min < 0.61 && b_max < 1.4 && b_max > 1.39));
  CHECK((c_min >= 0.6 && c_min < 0.61 && c_max < 1.4 && c_max > 1.39));
  CHECK((s_min >= 0.8 && s_min < 0.81 && s_max < 1.2 && s_max > 1.19));
  CHECK((h_min >= -0.1 && h_min < -0.099 && h_max < 0.1 && h_max > 0.099));
  check_mean("brightness", b_sum, n, 1.0, 0.8 * 0.8 / 12);
  check_mean("saturation", s_sum, n, 1.0, 0.4 * 0.4 / 12);
  check_mean("hue", h_sum, n, 0.0, 0.2 * 0.2 / 12);
  // Strength 1 clamps the lower end at 0; strength 0 leaves the factor neutral.
  const JitterParams q = color_jitter_params(gen, 1.5, 0.0, 0.0, 0.0);
  CHECK((q.brightness >= 0.0 && q.brightness < 2.5 && q.contrast == 1.0 && q.saturation == 1.0 && q.hue == 0.0));
  CHECK(contains(error_of([&] { color_jitter_params(gen, 0.4, 0.4, 0.4, 0.6); }), "hue 0.6"));

  // color_jitter applies the adjustments in the drawn order (they do not commute).
  const Image img = random_image(8, 8, 9);
  JitterParams p;
  p.order = {3, 0, 2, 1};
  p.brightness = 1.3, p.contrast = 0.7, p.saturation = 1.15, p.hue = -0.08;
  Image a = img, b = img;
  color_jitter(a, p);
  adjust_hue(b, -0.08);
  adjust_brightness(b, 1.3);
  adjust_saturation(b, 1.15);
  adjust_contrast(b, 0.7);
  CHECK(a.px == b.px);
  p.order = {0, 1, 2, 3};
  Image c = img;
  color_jitter(c, p);
  CHECK(c.px != a.px);
}

TEST_CASE("augment: parsing the named augmentations") {
  const Augmentation a = Augmentation::parse({"hflip_padcrop", "dino"}, 32);
  CHECK(a.steps() == std::vector<Augmentation::Step>{Augmentation::Step::hflip, Augmentation::Step::padcrop,
                                                      Augmentation::Step::dino});
  CHECK(a.str() == "hflip_padcrop_dino");
  CHECK(!a.empty());
  CHECK(Augmentation::parse({}, 28).empty());
  CHECK(Augmentation::parse({""}, 28).empty());
  const std::string e = error_of([] { Augmentation::parse({"hflip_blur"}, 32, "--per_crop_augs"); });
  CHECK(contains(e, "--per_crop_augs: unknown augmentation 'blur' in 'hflip_blur'"));
  CHECK(contains(e, "hflip, padcrop, dino"));
  CHECK(contains(error_of([] { Augmentation::parse({"hflip__dino"}, 32); }), "unknown augmentation ''"));
  CHECK(contains(error_of([] { Augmentation::parse({"hflip"}, 0); }), "native image size 0"));
}

TEST_CASE("augment: hflip and padcrop rates, offsets and output sizes") {
  const Image img = random_image(32, 32, 10);
  Image flipped = img;
  hflip(flipped);
  const Augmentation h = Augmentation::parse({"hflip"}, 32);
  Generator gen(14, purpose::augment);
  long flips = 0;
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    Image x = img;
    AugmentTrace t;
    h.apply(x, gen, &t);
    flips += t.flips;
    CHECK(x.px == (t.flips ? flipped.px : img.px));
  }
  check_rate("hflip", flips, n, 0.5);

  const Augmentation p = Augmentation::parse({"padcrop"}, 32);
  std::map<int, long> tops, lefts;
  for (int i = 0; i < 9000; ++i) {
    Image x = img;
    AugmentTrace t;
    p.apply(x, gen, &t);
    REQUIRE((x.h == 32 && x.w == 32 && t.padcrops == 1));
    ++tops[t.crop_top], ++lefts[t.crop_left];
    if (i < 50) CHECK(x.px == pad_crop(img, 32, 4, t.crop_top, t.crop_left).px);
  }
  CHECK(tops.size() == 9);
  CHECK(lefts.size() == 9);
  for (const auto& [v, count] : tops) check_rate("padcrop top " + std::to_string(v), count, 9000, 1.0 / 9);
  for (const auto& [v, count] : lefts) check_rate("padcrop left " + std::to_string(v), count, 9000, 1.0 / 9);

  // As a per-crop augmentation on a 28x28 crop it returns a native-size (32x32) image, as the testbed does;
  // a crop too small for the padded image is torchvision's error.
  Image crop = random_image(28, 28, 11);
  AugmentTrace t;
  p.apply(crop, gen, &t);
  CHECK((crop.h == 32 && crop.w == 32));
  CHECK((t.crop_top >= 0 && t.crop_top <= 4));
  Image tiny = random_image(16, 16, 12);
  CHECK(contains(error_of([&] { p.apply(tiny, gen); }), "32x32 crop is larger than the 16x16 image padded by 4"));
  // The padded image exactly the crop size: nothing to draw, offset 0.
  Image exact = random_image(24, 24, 13);
  AugmentTrace te;
  p.apply(exact, gen, &te);
  CHECK((te.crop_top == 0 && te.crop_left == 0));
}

// Replays one `dino` application from its trace with the primitives: the output must match.
static Image replay(const Image& img, const AugmentTrace& t) {
  Image x = img;
  if (t.flips) hflip(x);
  if (t.jitters) color_jitter(x, t.jitter);
  if (t.grayscales) to_grayscale(x);
  if (t.blurs) gaussian_blur(x, 9, t.sigma);
  if (t.solarizes) solarize(x, 128);
  return x;
}

TEST_CASE("augment: the dino RandomChoice, its branches' rates, and replay from the trace") {
  for (const int native : {32, 64}) {
    CAPTURE(native);
    const bool blur = native >= 64;
    const Augmentation d = Augmentation::parse({"dino"}, native);
    const Image img = random_image(12, 12, 20 + native);
    Generator gen(15 + native, purpose::augment);
    const int n = 12000;
    std::array<long, 3> chosen{}, flips{}, jitters{}, greys{}, blurs{}, solar{};
    double sigma_sum = 0, sigma_min = 9, sigma_max = 0;
    for (int i = 0; i < n; ++i) {
      Image x = img;
      AugmentTrace t;
      d.apply(x, gen, &t);
      REQUIRE((t.choice >= 0 && t.choice < 3));
      const int c = t.choice;
      ++chosen[c], flips[c] += t.flips, jitters[c] += t.jitters, greys[c] += t.grayscales, blurs[c] += t.blurs,
          solar[c] += t.solarizes;
      if (t.blurs) sigma_sum += t.sigma, sigma_min = std::min(sigma_min, t.sigma), sigma_max = std::max(sigma_max, t.sigma);
      if (i < 300) CHECK(x.px == replay(img, t).px);
    }
    const std::array<double, 3> p_choice{0.4, 0.4, 0.2}, p_blur{1.0, 0.1, 0.5}, p_solar{0.0, 0.2, 0.0};
    for (int c = 0; c < 3; ++c) {
      const std::string T = "T" + std::to_string(c + 1);
      check_rate(T + " chosen", chosen[c], n, p_choice[c]);
      check_rate(T + " flip", flips[c], chosen[c], 0.5);
      check_rate(T + " jitter", jitters[c], chosen[c], 0.8);
      check_rate(T + " grayscale", greys[c], chosen[c], 0.2);
      check_rate(T + " blur", blurs[c], chosen[c], blur ? p_blur[c] : 0.0);
      check_rate(T + " solarize", solar[c], chosen[c], p_solar[c]);
    }
    if (blur) {
      const long nb = blurs[0] + blurs[1] + blurs[2];
      check_mean("blur sigma", sigma_sum, nb, 1.05, 1.9 * 1.9 / 12);
      CHECK((sigma_min >= 0.1 && sigma_min < 0.12 && sigma_max < 2.0 && sigma_max > 1.98));
    }
  }
}

TEST_CASE("augment: draws depend only on the generator") {
  const Augmentation a = Augmentation::parse({"hflip_dino", "padcrop"}, 64);
  const Image img = random_image(64, 64, 30);
  Image x = img, y = img, z = img;
  Generator g1(5, purpose::augment, 2, 7), g2(5, purpose::augment, 2, 7), g3(5, purpose::augment, 2, 8);
  a.apply(x, g1);
  a.apply(y, g2);
  a.apply(z, g3);
  CHECK(x.px == y.px);
  CHECK(x.px != z.px);
  CHECK((x.h == 64 && x.w == 64));
}

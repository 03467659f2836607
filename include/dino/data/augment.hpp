// Random image transforms and the testbed's named augmentations (spec §2.2, §2.4; safelix/dinopl
// datasets/augmentation.py): torchvision 0.14's RandomResizedCrop, RandomHorizontalFlip, ColorJitter,
// RandomGrayscale, RandomSolarize, GaussianBlur, RandomCrop(padding) and RandomChoice, drawing from dino::Generator.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/random.hpp"
#include "dino/data/image.hpp"
#include "dino/data/transforms.hpp"

namespace dino {

// RandomResizedCrop.get_params for a height x width image: up to 10 attempts of an area fraction
// s ~ U(min_scale, max_scale) and a log-aspect log r ~ U(log min_ratio, log max_ratio), w = round(sqrt(A s r)),
// h = round(sqrt(A s / r)) (Python's round: half to even), accepted if 0 < w <= width and 0 < h <= height, with a
// uniform offset; otherwise the centre crop of the whole image with its aspect clamped to [min_ratio, max_ratio].
inline CropBox random_resized_crop_params(Generator& gen, int height, int width, double min_scale, double max_scale,
                                          double min_ratio = 3.0 / 4.0, double max_ratio = 4.0 / 3.0) {
  DINO_CHECK(height > 0 && width > 0, "RandomResizedCrop: empty ", height, "x", width, " image");
  DINO_CHECK(min_scale >= 0 && min_scale <= max_scale, "RandomResizedCrop: scale (", min_scale, ", ", max_scale,
             ") must satisfy 0 <= min <= max");
  DINO_CHECK(min_ratio > 0 && min_ratio <= max_ratio, "RandomResizedCrop: ratio (", min_ratio, ", ", max_ratio,
             ") must satisfy 0 < min <= max");
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(min_ratio), log_hi = std::log(max_ratio);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * gen.uniform(min_scale, max_scale);
    const double aspect = std::exp(gen.uniform(log_lo, log_hi));
    const double wf = std::nearbyint(std::sqrt(target_area * aspect));
    const double hf = std::nearbyint(std::sqrt(target_area / aspect));
    if (wf > 0 && wf <= width && hf > 0 && hf <= height) {
      const int w = static_cast<int>(wf), h = static_cast<int>(hf);
      const int top = static_cast<int>(gen.below(static_cast<std::uint64_t>(height - h + 1)));
      const int left = static_cast<int>(gen.below(static_cast<std::uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int w = width, h = height;
  if (in_ratio < min_ratio) h = static_cast<int>(std::nearbyint(w / min_ratio));
  else if (in_ratio > max_ratio) w = static_cast<int>(std::nearbyint(h * max_ratio));
  return {(height - h) / 2, (width - w) / 2, h, w};
}

// RandomResizedCrop(size, scale=(min_scale, max_scale)) on PIL: the box above, bilinear-resized to size x size.
// `box`, if given, receives the crop box.
inline Image random_resized_crop(const Image& img, Generator& gen, int size, double min_scale, double max_scale,
                                 CropBox* box = nullptr) {
  const CropBox b = random_resized_crop_params(gen, img.h, img.w, min_scale, max_scale);
  if (box) *box = b;
  return resized_crop(img, b, size, size);
}

// ColorJitter.get_params: the order in which brightness (0), contrast (1), saturation (2) and hue (3) are applied
// (a uniform random permutation) and their factors.
struct JitterParams {
  std::array<int, 4> order{0, 1, 2, 3};
  double brightness = 1, contrast = 1, saturation = 1, hue = 0;
};

// ColorJitter(brightness, contrast, saturation, hue) draws: each of the first three factors uniform in
// [max(0, 1 - x), 1 + x], hue uniform in [-hue, hue] (hue <= 0.5); a zero strength leaves its factor neutral.
inline JitterParams color_jitter_params(Generator& gen, double brightness, double contrast, double saturation,
                                        double hue) {
  DINO_CHECK(brightness >= 0 && contrast >= 0 && saturation >= 0, "ColorJitter: brightness ", brightness,
             ", contrast ", contrast, ", saturation ", saturation, " must be non-negative");
  DINO_CHECK(hue >= 0 && hue <= 0.5, "ColorJitter: hue ", hue, " must lie in [0, 0.5]");
  JitterParams p;
  for (int i = 3; i > 0; --i) std::swap(p.order[i], p.order[gen.below(static_cast<std::uint64_t>(i + 1))]);
  auto factor = [&](double x) { return x > 0 ? gen.uniform(std::max(0.0, 1.0 - x), 1.0 + x) : 1.0; };
  p.brightness = factor(brightness);
  p.contrast = factor(contrast);
  p.saturation = factor(saturation);
  p.hue = hue > 0 ? gen.uniform(-hue, hue) : 0.0;
  return p;
}

// ColorJitter's forward with drawn parameters: the four adjustments in p.order.
inline void color_jitter(Image& img, const JitterParams& p) {
  for (int op : p.order) {
    switch (op) {
      case 0: adjust_brightness(img, p.brightness); break;
      case 1: adjust_contrast(img, p.contrast); break;
      case 2: adjust_saturation(img, p.saturation); break;
      case 3: adjust_hue(img, p.hue); break;
      default: fail("ColorJitter: order entry ", op, " is not 0..3");
    }
  }
}

// What Augmentation::apply drew, for tests and previews: how often each random step fired (summed over the
// named augmentations), and the parameters of the last one that fired.
struct AugmentTrace {
  int choice = -1;  // `dino`: 0 = T1, 1 = T2, 2 = T3 (the last choice)
  int flips = 0, jitters = 0, grayscales = 0, blurs = 0, solarizes = 0, padcrops = 0;
  JitterParams jitter;
  double sigma = 0;                   // the last blur's sigma
  int crop_top = -1, crop_left = -1;  // the last padcrop's offsets into the padded image
};

// RandomHorizontalFlip(p). Returns whether it flipped.
inline bool random_hflip(Image& img, Generator& gen, double p = 0.5) {
  if (!(gen.uniform() < p)) return false;
  hflip(img);
  return true;
}

// RandomCrop(size, padding=pad) with zero fill: the offsets are uniform over the padded image (none drawn when the
// padded image is exactly size x size); a padded image smaller than the crop is an error, as in torchvision.
inline Image random_pad_crop(const Image& img, Generator& gen, int size, int pad, int* top_out = nullptr,
                             int* left_out = nullptr) {
  const int ph = img.h + 2 * pad, pw = img.w + 2 * pad;
  DINO_CHECK(size <= ph && size <= pw, "padcrop: the ", size, "x", size, " crop is larger than the ", img.h, "x", img.w,
             " image padded by ", pad, " (", ph, "x", pw, ")");
  int top = 0, left = 0;
  if (ph != size || pw != size) {
    top = static_cast<int>(gen.below(static_cast<std::uint64_t>(ph - size + 1)));
    left = static_cast<int>(gen.below(static_cast<std::uint64_t>(pw - size + 1)));
  }
  if (top_out) *top_out = top;
  if (left_out) *left_out = left;
  return pad_crop(img, size, pad, top, left);
}

// The testbed's `dino` augmentation: RandomChoice([T1, T2, T3], p=[0.4, 0.4, 0.2]), one choice per call, where
// FJ = RandomHorizontalFlip(0.5); RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1), p=0.8); RandomGrayscale(0.2), and
// T1 = FJ; GaussianBlur(9, sigma ~ U(0.1, 2)) with p 1.0; T2 = FJ; blur p 0.1; RandomSolarize(128, p=0.2);
// T3 = FJ; blur p 0.5. Without blur (datasets whose native size is < 64) every blur probability is 0.
inline void dino_augment(Image& img, Generator& gen, bool with_blur, AugmentTrace* trace = nullptr) {
  AugmentTrace local;
  AugmentTrace& t = trace ? *trace : local;
  const double u = gen.uniform();  // random.choices: the first cumulative weight above u
  const int choice = u < 0.4 ? 0 : (u < 0.8 ? 1 : 2);
  t.choice = choice;
  t.flips += random_hflip(img, gen, 0.5);
  if (gen.uniform() < 0.8) {
    t.jitter = color_jitter_params(gen, 0.4, 0.4, 0.2, 0.1);
    color_jitter(img, t.jitter);
    ++t.jitters;
  }
  if (gen.uniform() < 0.2) {
    to_grayscale(img);
    ++t.grayscales;
  }
  const double blur_p = !with_blur ? 0.0 : (choice == 0 ? 1.0 : (choice == 1 ? 0.1 : 0.5));
  if (blur_p > 0 && gen.uniform() < blur_p) {
    t.sigma = gen.uniform(0.1, 2.0);
    gaussian_blur(img, 9, t.sigma);
    ++t.blurs;
  }
  if (choice == 1 && gen.uniform() < 0.2) {
    solarize(img, 128);
    ++t.solarizes;
  }
}

// The named augmentations of --augs (the whole image, once per sample) and --per_crop_augs (each crop): names are
// split on '_' and flattened ({"hflip_padcrop"} is hflip then padcrop) and applied in order.
class Augmentation {
 public:
  enum class Step { hflip, padcrop, dino };

  // native_size: the dataset's image side (padcrop's output size; `dino` blurs only when it is >= 64).
  // `flag` prefixes error messages ("--augs"). An empty name adds nothing; an unknown one is an error.
  static Augmentation parse(const std::vector<std::string>& names, int native_size, const std::string& flag = "") {
    const std::string where = flag.empty() ? std::string() : flag + ": ";
    DINO_CHECK(native_size > 0, where, "the dataset's native image size ", native_size, " must be positive");
    Augmentation a;
    a.native_size_ = native_size;
    for (const std::string& name : names) {
      if (name.empty()) continue;
      std::size_t begin = 0;
      while (true) {
        const std::size_t end = name.find('_', begin);
        const std::string part = name.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
        if (part == "hflip") a.steps_.push_back(Step::hflip);
        else if (part == "padcrop") a.steps_.push_back(Step::padcrop);
        else if (part == "dino") a.steps_.push_back(Step::dino);
        else fail(where, "unknown augmentation '", part, "' in '", name, "' (choose from hflip, padcrop, dino)");
        if (end == std::string::npos) break;
        begin = end + 1;
      }
    }
    return a;
  }

  bool empty() const { return steps_.empty(); }
  const std::vector<Step>& steps() const { return steps_; }
  int native_size() const { return native_size_; }
  // The steps as names joined by '_' ("hflip_padcrop"; "" when empty).
  std::string str() const {
    std::string s;
    for (Step st : steps_) s += std::string(s.empty() ? "" : "_") + (st == Step::hflip ? "hflip" : st == Step::padcrop ? "padcrop" : "dino");
    return s;
  }

  // Applies every step in order, drawing from gen; padcrop replaces img by a native_size x native_size image.
  // Thread-safe: the object is not modified. `trace`, if given, records the draws (it is not reset).
  void apply(Image& img, Generator& gen, AugmentTrace* trace = nullptr) const {
    for (Step st : steps_) {
      switch (st) {
        case Step::hflip: {
          const bool f = random_hflip(img, gen, 0.5);
          if (trace) trace->flips += f;
          break;
        }
        case Step::padcrop: {
          int top = 0, left = 0;
          img = random_pad_crop(img, gen, native_size_, 4, &top, &left);
          if (trace) ++trace->padcrops, trace->crop_top = top, trace->crop_left = left;
          break;
        }
        case Step::dino: dino_augment(img, gen, native_size_ >= 64, trace); break;
      }
    }
  }

 private:
  std::vector<Step> steps_;
  int native_size_ = 0;
};

}  // namespace dino

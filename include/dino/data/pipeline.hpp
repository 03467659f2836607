// One sample -> its normalised tensors: the testbed's DINO transform (--augs once per image, then per crop
// RandomResizedCrop + --per_crop_augs + ToTensor + Normalize, spec §2.2) and the probe/eval transform
// (Resize(S0) + ToTensor + Normalize). Outputs go straight into caller-owned [3, H, W] slots of a batch.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/random.hpp"
#include "dino/data/augment.hpp"
#include "dino/data/image.hpp"
#include "dino/data/multicrop.hpp"
#include "dino/data/sampler.hpp"
#include "dino/data/transforms.hpp"

namespace dino {

// Image i of a set as RGB into a reused buffer (ImageSet::image without the allocation per sample).
inline void load_rgb(const ImageSet& set, std::int64_t i, Image& out) {
  DINO_CHECK(i >= 0 && i < set.n, "image index ", i, " is outside [0, ", set.n, ") of ", set.info.name);
  DINO_CHECK(set.stored_channels == 1 || set.stored_channels == 3, set.info.name, ": images with ",
             set.stored_channels, " channels (expected 1 or 3)");
  out.h = set.h;
  out.w = set.w;
  out.c = 3;
  const std::size_t plane = static_cast<std::size_t>(set.h) * set.w;
  out.px.resize(plane * 3);
  const std::uint8_t* src = set.pixels.data() + static_cast<std::size_t>(i) * plane * set.stored_channels;
  std::uint8_t* dst = out.px.data();
  if (set.stored_channels == 3) {
    std::copy(src, src + plane * 3, dst);
  } else {
    for (std::size_t p = 0; p < plane; ++p) dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = src[p];
  }
}

// The images one thread reuses from sample to sample.
struct PipelineWorkspace {
  Image source;  // the dataset image, then the image after --augs
  Image crop;    // one crop after resizing and --per_crop_augs
};

class Pipeline {
 public:
  struct Output {
    int h = 0, w = 0;
  };

  Pipeline() = default;

  // The DINO transform of a --mc preset. Draws of the sample visited at position p of epoch e come from
  // Generator(seed, augment, stream_epoch(stream, e), p) only.
  static Pipeline multicrop(const MultiCrop& mc, const DatasetInfo& info, const std::vector<std::string>& augs,
                            const std::vector<std::string>& per_crop_augs, std::uint64_t seed,
                            Stream stream = Stream::train) {
    DINO_CHECK(!mc.crops.empty(), "a multi-crop transform without crops");
    Pipeline p;
    p.eval_ = false;
    p.mc_ = mc;
    p.mean_ = info.mean;
    p.std_ = info.std;
    p.seed_ = seed;
    p.stream_ = stream;
    p.augs_ = std::make_shared<const Augmentation>(Augmentation::parse(augs, info.native_size, "--augs"));
    p.per_crop_ = std::make_shared<const Augmentation>(Augmentation::parse(per_crop_augs, info.native_size, "--per_crop_augs"));
    // A per-crop padcrop makes every crop native_size x native_size (spec §2.4); nothing else changes sizes.
    const auto& steps = p.per_crop_->steps();
    const bool padcrop = std::find(steps.begin(), steps.end(), Augmentation::Step::padcrop) != steps.end();
    for (const auto& c : mc.crops) {
      DINO_CHECK(c.size > 0, "crop '", c.name, "' has size ", c.size);
      const int s = padcrop ? info.native_size : static_cast<int>(c.size);
      p.outputs_.push_back({s, s});
    }
    return p;
  }

  // The probe/eval transform: the shorter side resized to `size` (bilinear, torchvision's Resize(int): the
  // longer side becomes int(size * long / short)); an image already that size is left as it is.
  static Pipeline eval(int size, const DatasetInfo& info, int in_h, int in_w) {
    DINO_CHECK(size > 0 && in_h > 0 && in_w > 0, "eval transform: size ", size, " for ", in_h, "x", in_w, " images");
    Pipeline p;
    p.eval_ = true;
    p.eval_size_ = size;
    p.mean_ = info.mean;
    p.std_ = info.std;
    const bool tall = in_h > in_w;
    const int lng = static_cast<int>(static_cast<std::int64_t>(size) * (tall ? in_h : in_w) / (tall ? in_w : in_h));
    p.outputs_.push_back(tall ? Output{lng, size} : Output{size, lng});
    return p;
  }

  bool is_eval() const { return eval_; }
  // One output per crop (multi-crop) or one (eval): [3, h, w] each.
  const std::vector<Output>& outputs() const { return outputs_; }
  std::size_t output_numel(std::size_t i) const { return 3 * static_cast<std::size_t>(outputs_[i].h) * outputs_[i].w; }
  const MultiCrop& multicrop_spec() const { return mc_; }

  // Transforms dataset sample `index`, visited at `position` of epoch `epoch`; out[i] receives output i as
  // [3, h_i, w_i] (overwritten). ws: the calling thread's reused images.
  template <class T>
  void run(const ImageSet& set, std::int64_t index, std::int64_t epoch, std::int64_t position, T* const* out,
           PipelineWorkspace& ws) const {
    load_rgb(set, index, ws.source);
    if (eval_) {
      const Output& o = outputs_[0];
      if (ws.source.h == o.h && ws.source.w == o.w) {
        to_normalized_chw<T>(ws.source, mean_, std_, out[0]);
        return;
      }
      ws.crop = resize_shorter(ws.source, eval_size_);
      check_size(ws.crop, o, "Resize");
      to_normalized_chw<T>(ws.crop, mean_, std_, out[0]);
      return;
    }
    Generator g(seed_, purpose::augment, stream_epoch(stream_, epoch), static_cast<std::uint64_t>(position));
    if (!augs_->empty()) augs_->apply(ws.source, g);
    for (std::size_t i = 0; i < mc_.crops.size(); ++i) {
      const CropSpec& c = mc_.crops[i];
      const int s = static_cast<int>(c.size);
      const CropBox box = random_resized_crop_params(g, ws.source.h, ws.source.w, c.min_scale, c.max_scale);
      ws.crop = resized_crop(ws.source, box, s, s);
      if (!per_crop_->empty()) per_crop_->apply(ws.crop, g);
      check_size(ws.crop, outputs_[i], c.name.c_str());
      to_normalized_chw<T>(ws.crop, mean_, std_, out[i]);
    }
  }

 private:
  static void check_size(const Image& im, const Output& o, const char* what) {
    DINO_CHECK(im.h == o.h && im.w == o.w && im.c == 3, "transform of ", what, " made a ", im.h, "x", im.w, "x",
               im.c, " image; expected ", o.h, "x", o.w, "x3");
  }

  bool eval_ = true;
  int eval_size_ = 0;
  MultiCrop mc_;
  std::array<double, 3> mean_{}, std_{};
  std::uint64_t seed_ = 0;
  Stream stream_ = Stream::train;
  // Shared so that copies of a Pipeline (one per loader) need not copy the parsed augmentations.
  std::shared_ptr<const Augmentation> augs_, per_crop_;
  std::vector<Output> outputs_;
};

}  // namespace dino

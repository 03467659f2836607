// Image: one 8-bit picture, height x width x channels, interleaved (HWC) like a PIL image's bytes; and
// ImageSet: a whole split of a dataset in memory (the readers fill it). The data pipeline works on these
// before the crops become normalised float tensors.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dino/core/error.hpp"

namespace dino {

struct Image {
  int h = 0, w = 0, c = 0;
  std::vector<std::uint8_t> px;  // h * w * c bytes, row-major, channels interleaved

  Image() = default;
  Image(int height, int width, int channels)
      : h(height), w(width), c(channels), px(static_cast<std::size_t>(height) * width * channels, 0) {}
  std::uint8_t& at(int y, int x, int ch) { return px[(static_cast<std::size_t>(y) * w + x) * c + ch]; }
  std::uint8_t at(int y, int x, int ch) const { return px[(static_cast<std::size_t>(y) * w + x) * c + ch]; }
};

// What the pipeline needs to know about a dataset (spec §2.1, A2).
struct DatasetInfo {
  std::string name;            // MNIST, FashionMNIST, CIFAR10, CIFAR100
  int native_size = 0;         // 28 or 32 (square images)
  int classes = 0;             // 10 or 100
  std::array<double, 3> mean{}, std{};  // per RGB channel, for Normalize
};

// One split, in memory: n images of h x w x stored_channels (1 for grey datasets, 3 for CIFAR) and labels.
struct ImageSet {
  DatasetInfo info;
  std::int64_t n = 0;
  int h = 0, w = 0, stored_channels = 0;
  std::vector<std::uint8_t> pixels;   // n * h * w * stored_channels, image after image, HWC
  std::vector<std::int64_t> labels;   // n, each in [0, info.classes)

  // Image i as RGB: grey is replicated to 3 channels (the testbed converts to RGB before any transform).
  Image image(std::int64_t i) const {
    DINO_CHECK(i >= 0 && i < n, "image index ", i, " is outside [0, ", n, ") of ", info.name);
    Image out(h, w, 3);
    const std::size_t plane = static_cast<std::size_t>(h) * w;
    const std::uint8_t* src = pixels.data() + static_cast<std::size_t>(i) * plane * stored_channels;
    for (std::size_t p = 0; p < plane; ++p)
      for (int ch = 0; ch < 3; ++ch) out.px[p * 3 + ch] = src[p * stored_channels + (stored_channels == 1 ? 0 : ch)];
    return out;
  }
};

}  // namespace dino

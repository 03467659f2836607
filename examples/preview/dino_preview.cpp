// dino_preview: writes a PNG grid of the crops of the first images of a training batch (one row per image,
// one column per crop of --mc, denormalised), so that one can see what --mc, --augs and --per_crop_augs do.
//   dino_preview [the dino command's data flags] [--n_images N] [--out preview.png]
#include <dino/cpu.hpp>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>

#include "dino/data/datasets.hpp"
#include "dino/data/loader.hpp"
#include "dino/train/cli.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace {

using namespace dino;

// One batch's crops as an RGB grid: n rows (images) x C columns (crops), cells of the largest crop size with
// a 2-pixel grey gutter.
std::vector<std::uint8_t> grid(const Batch<float>& b, const DatasetInfo& info, int n, int& width, int& height) {
  const int gutter = 2;
  int cell = 0;
  for (const auto& c : b.crops) cell = std::max({cell, c.h, c.w});
  const int cols = static_cast<int>(b.crops.size());
  width = cols * cell + (cols + 1) * gutter;
  height = n * cell + (n + 1) * gutter;
  std::vector<std::uint8_t> img(static_cast<std::size_t>(width) * height * 3, 128);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < cols; ++c) {
      const auto& crop = b.crops[static_cast<std::size_t>(c)];
      const std::size_t plane = static_cast<std::size_t>(crop.h) * crop.w;
      const float* src = crop.data.data() + static_cast<std::size_t>(r) * 3 * plane;
      for (int y = 0; y < crop.h; ++y)
        for (int x = 0; x < crop.w; ++x)
          for (int ch = 0; ch < 3; ++ch) {
            const double v = src[ch * plane + static_cast<std::size_t>(y) * crop.w + x] * info.std[ch] + info.mean[ch];
            const int px = gutter + c * (cell + gutter) + x, py = gutter + r * (cell + gutter) + y;
            img[(static_cast<std::size_t>(py) * width + px) * 3 + ch] =
                static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
          }
    }
  return img;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> extra;
  CommandLine cl;
  try {
    cl = parse_command_line(std::vector<std::string>(argv + 1, argv + argc), {"n_images", "out"}, &extra);
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  if (cl.help) {
    std::cout << cli_help("dino_preview", "Writes a PNG grid of one training batch's crops (rows: images, columns: "
                                          "crops).\n  --n_images N          images to show (default: 8)\n"
                                          "  --out FILE            output PNG (default: preview.png)");
    return 0;
  }
  try {
    const Config& c = cl.config;
    const std::string out = extra.count("out") ? extra["out"] : "preview.png";
    const int n_images = extra.count("n_images") ? static_cast<int>(cli_detail::parse_int("n_images", extra["n_images"])) : 8;
    DINO_CHECK(n_images >= 1 && n_images <= 256, "--n_images must lie in [1, 256], got ", n_images);
    const ImageSet train = load_dataset(c.dataset, Split::train, resolve_data_dir(c.data_dir));
    Config small = c;
    small.bs_train = n_images;
    small.n_workers = 0;
    Loader<float> loader(train, train_loader_spec(small, train, static_cast<std::uint64_t>(c.seed.value_or(0))));
    loader.start(0);
    const Batch<float>* b = loader.next();
    int w = 0, h = 0;
    const auto img = grid(*b, train.info, static_cast<int>(std::min<std::int64_t>(n_images, b->size)), w, h);
    DINO_CHECK(stbi_write_png(out.c_str(), w, h, 3, img.data(), w * 3) != 0, "cannot write '", out, "'");
    std::cout << "wrote " << out << " (" << w << "x" << h << "): " << b->size << " images x " << b->crops.size()
              << " crops of --mc " << c.mc << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

// The data pipeline's throughput in source images per second on one core (the loader on the calling thread,
// n_workers 0): Fashion-MNIST with 2x28+4x28 and --per_crop_augs dino, and CIFAR-shaped 32x32 RGB images
// with 2x32 and --augs hflip_padcrop. bench/torchvision_pipeline.py times the same pipelines in torchvision;
// bench/run_data.sh runs both and prints the table of docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <dino/cpu.hpp>

#include "dino/data/datasets.hpp"
#include "dino/data/loader.hpp"

namespace {

using namespace dino;

const ImageSet& fashion() {
  static const ImageSet s = [] {
    try {
      return load_dataset("FashionMNIST", Split::train, resolve_data_dir(""));
    } catch (const Error&) {
      // Without the Debian package: random images of the same shape.
      ImageSet r;
      r.info = dataset_info("FashionMNIST");
      r.n = 4096, r.h = r.w = 28, r.stored_channels = 1;
      Generator g(1);
      r.pixels.resize(static_cast<std::size_t>(r.n) * 28 * 28);
      for (auto& p : r.pixels) p = static_cast<std::uint8_t>(g.below(256));
      r.labels.assign(static_cast<std::size_t>(r.n), 0);
      return r;
    }
  }();
  return s;
}

const ImageSet& cifar_shaped() {
  static const ImageSet s = [] {
    ImageSet r;
    r.info = dataset_info("CIFAR10");
    r.n = 4096, r.h = r.w = 32, r.stored_channels = 3;
    Generator g(2);
    r.pixels.resize(static_cast<std::size_t>(r.n) * 32 * 32 * 3);
    for (auto& p : r.pixels) p = static_cast<std::uint8_t>(g.below(256));
    r.labels.assign(static_cast<std::size_t>(r.n), 0);
    return r;
  }();
  return s;
}

void run(benchmark::State& state, const ImageSet& set, const Config& cfg) {
  LoaderSpec spec = train_loader_spec(cfg, set, 7);
  spec.n_workers = 0;  // one core: the batches are made on this thread
  spec.sampler = Sampler::random(all_indices(set.n), 2048, 7);
  Loader<float> loader(set, spec);
  std::int64_t images = 0, epoch = 0;
  for (auto _ : state) {
    loader.start(epoch++);
    while (const Batch<float>* b = loader.next()) {
      images += b->size;
      benchmark::DoNotOptimize(b->crops[0].data.data());
    }
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsRate);
}

void BM_pipeline_fashion_2x28_4x28_per_crop_dino(benchmark::State& state) {
  Config c;
  c.mc = "2x28+4x28";
  c.per_crop_augs = {"dino"};
  c.bs_train = 256;
  run(state, fashion(), c);
}
void BM_pipeline_cifar_2x32_augs_hflip_padcrop(benchmark::State& state) {
  Config c;
  c.dataset = "CIFAR10";
  c.mc = "2x32";
  c.augs = {"hflip_padcrop"};
  c.bs_train = 256;
  run(state, cifar_shaped(), c);
}
BENCHMARK(BM_pipeline_fashion_2x28_4x28_per_crop_dino)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pipeline_cifar_2x32_augs_hflip_padcrop)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// The part of dino_replay that is compiled once per backend: reads the files, replays, writes the result.
#pragma once
#include <string>

#include "dino/train/replay.hpp"

namespace dino::replay_tool {

struct Args {
  std::string config, init, batches, out;
  bool float64 = false, force_cpu = false;
};

// Runs the replay on backend B in the precision the arguments ask for.
template <class B>
void run(const Args& a, const Config& cfg, std::int64_t steps_per_epoch) {
  const io::Safetensors init = io::Safetensors::load(a.init);
  const io::Safetensors batches = io::Safetensors::load(a.batches);
  Ctx<B> ctx;
  const io::Safetensors out = a.float64 || cfg.float64 ? replay<double, B>(ctx, cfg, steps_per_epoch, init, batches)
                                                       : replay<float, B>(ctx, cfg, steps_per_epoch, init, batches);
  out.save(a.out);
}

#ifdef DINO_REPLAY_WITH_CUDA
// In replay_cuda.cu: whether a GPU is visible, and the replay on it.
int cuda_device_count();
void run_cuda(const Args& a, const Config& cfg, std::int64_t steps_per_epoch);
#endif

}  // namespace dino::replay_tool

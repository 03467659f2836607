// dino_replay's CUDA half: the replay instantiated on dino::Cuda.
#include <dino/cuda.hpp>

#include "replay_run.hpp"

namespace dino::replay_tool {
int cuda_device_count() { return Cuda::device_count(); }
void run_cuda(const Args& a, const Config& cfg, std::int64_t steps_per_epoch) { run<Cuda>(a, cfg, steps_per_epoch); }
}  // namespace dino::replay_tool

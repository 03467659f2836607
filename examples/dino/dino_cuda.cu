// The dino command's CUDA half: the training run instantiated on dino::Cuda.
#include <dino/cuda.hpp>

#include "train_run.hpp"

namespace dino::cli_tool {
int cuda_device_count() { return Cuda::device_count(); }
bool train_cuda(const Config& c, const std::string& dir, const std::string& resume_from,
                const std::function<bool()>& should_stop, ProbeResults& probes) {
  return train<Cuda>(c, dir, resume_from, should_stop, probes);
}
}  // namespace dino::cli_tool

#pragma once
#include "dino/cuda/launch.cuh"
namespace dino::cuda {
struct NormOps {};
}  // namespace dino::cuda

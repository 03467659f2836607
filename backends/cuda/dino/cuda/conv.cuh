#pragma once
#include "dino/cuda/launch.cuh"
namespace dino::cuda {
struct ConvOps {};
}  // namespace dino::cuda

#pragma once
#include "dino/cuda/launch.cuh"
namespace dino::cuda {
struct PoolingOps {};
}  // namespace dino::cuda

#pragma once
#include "dino/cpu/parallel.hpp"
namespace dino::cpu {
struct PoolingOps {};
}  // namespace dino::cpu

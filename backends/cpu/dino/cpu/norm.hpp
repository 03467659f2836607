#pragma once
#include "dino/cpu/parallel.hpp"
namespace dino::cpu {
struct NormOps {};
}  // namespace dino::cpu

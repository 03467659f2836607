#pragma once
#include "dino/cpu/parallel.hpp"
namespace dino::cpu {
struct ConvOps {};
}  // namespace dino::cpu

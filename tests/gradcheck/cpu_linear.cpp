#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "linear.hpp"

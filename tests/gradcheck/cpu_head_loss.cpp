#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "head_loss.hpp"

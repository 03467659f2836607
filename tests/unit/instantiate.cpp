// Every class template instantiated for float and double on the CPU backend.
#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "../support/instantiate.hpp"

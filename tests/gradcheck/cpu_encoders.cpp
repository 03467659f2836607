// The encoder gradient checks of tests/gradcheck/encoders.hpp on the CPU backend.
#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "encoders.hpp"

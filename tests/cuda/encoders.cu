// The encoder gradient checks of tests/gradcheck/encoders.hpp, run on the CUDA backend.
#include <dino/cuda.hpp>
#define DINO_TEST_BACKEND dino::Cuda
#include "../gradcheck/encoders.hpp"

// The layer gradient checks of tests/gradcheck, run on the CUDA backend.
#include <dino/cuda.hpp>
#define DINO_TEST_BACKEND dino::Cuda
#include "../gradcheck/conv_pool.hpp"
#include "../gradcheck/linear.hpp"
#include "../gradcheck/norm.hpp"

// The head and multicrop-loss gradient checks of tests/gradcheck, run on the CUDA backend.
#include <dino/cuda.hpp>
#define DINO_TEST_BACKEND dino::Cuda
#include "../gradcheck/head_loss.hpp"

// Every class template instantiated for float and double on the CUDA backend.
#include <dino/cuda.hpp>
#define DINO_TEST_BACKEND dino::Cuda
#include "../support/instantiate.hpp"

// The optimizer, clipping and sum-of-squares tests of tests/unit/optim_tests.hpp (torch.optim SGD, Adam,
// AdamW; torch.nn.utils.clip_grad_norm_), run on the CUDA backend.
#include <dino/cuda.hpp>
#define DINO_TEST_BACKEND dino::Cuda
#include "../unit/optim_tests.hpp"

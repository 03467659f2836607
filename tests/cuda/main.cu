// Runner of the CUDA tests: exits 77 (reported by ctest as skipped, not passed) when no GPU is visible.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <dino/cuda.hpp>

int main(int argc, char** argv) {
  if (dino::Cuda::device_count() == 0) {
    std::printf("no CUDA device visible: the CUDA tests are skipped\n");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}

// OpenMP helpers of the CPU backend. Small loops stay serial: a parallel region costs more than it saves.
#pragma once
#include "dino/core/shape.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dino::cpu {

// Below this many elements an elementwise loop runs on one thread.
constexpr Index kParallelGrain = 1 << 14;

// for (i in [0, n)) f(i), split statically over the OpenMP threads when n is large enough.
template <class F>
inline void parallel_for(Index n, F&& f, Index grain = kParallelGrain) {
#ifdef _OPENMP
  if (n >= grain && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (Index i = 0; i < n; ++i) f(i);
    return;
  }
#else
  (void)grain;
#endif
  for (Index i = 0; i < n; ++i) f(i);
}

}  // namespace dino::cpu

// The CPU backend: Eigen and OpenMP (and OpenBLAS for GEMM when DINO_USE_OPENBLAS is defined) live only
// under backends/cpu. Including this header defines dino::Cpu and brings in the whole library.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "dino/core/backend.hpp"
#include "dino/core/context.hpp"
#include "dino/core/shape.hpp"

namespace dino {

template <>
struct backend_defined<Cpu> : std::true_type {};

// The CPU context: the thread count of the one OpenMP pool, and a scratch workspace (im2col columns).
template <>
struct Ctx<Cpu> : CtxBase {
  // n_threads <= 0 keeps OpenMP's default.
  explicit Ctx(int n_threads = 0) {
    if (n_threads > 0) set_threads(n_threads);
  }
  void set_threads(int n);
  int threads() const;

  // A scratch buffer of at least n elements, valid until the next call; grows, never shrinks.
  template <class T>
  T* scratch(Index n) {
    const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    if (bytes > scratch_.size()) scratch_.resize(bytes);
    return reinterpret_cast<T*>(scratch_.data());
  }

 private:
  struct alignas(64) Block {
    unsigned char b[64];
  };
  struct Scratch {
    std::vector<Block> blocks;
    std::size_t size() const { return blocks.size() * sizeof(Block); }
    void resize(std::size_t bytes) { blocks.resize((bytes + sizeof(Block) - 1) / sizeof(Block)); }
    unsigned char* data() { return blocks.front().b; }
  } scratch_;
};

}  // namespace dino

#include "dino/cpu/memory.hpp"
#include "dino/cpu/blas.hpp"
#include "dino/cpu/elementwise.hpp"
#include "dino/cpu/conv.hpp"
#include "dino/cpu/pooling.hpp"
#include "dino/cpu/norm.hpp"
#include "dino/cpu/normalize.hpp"
#include "dino/cpu/optim.hpp"
#include "dino/cpu/rowwise.hpp"

namespace dino {

// The backend type: a struct of static operations, one base per op family (backends/cpu/dino/cpu/*.hpp).
struct Cpu : cpu::MemoryOps, cpu::BlasOps, cpu::ElementwiseOps, cpu::ConvOps, cpu::PoolingOps, cpu::NormOps,
             cpu::NormalizeOps, cpu::OptimOps, cpu::RowwiseOps {
  static constexpr const char* name = "cpu";
};

}  // namespace dino

#include "dino/dino.hpp"

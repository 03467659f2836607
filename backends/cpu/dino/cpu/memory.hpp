// CPU memory: 64-byte aligned host allocations, copies and fills.
#pragma once
#include <cstdlib>
#include <cstring>
#include <new>

#include "dino/core/error.hpp"
#include "dino/cpu/parallel.hpp"

namespace dino::cpu {

struct MemoryOps {
  template <class T>
  static T* allocate(Index n) {
    if (n == 0) return nullptr;
    const std::size_t bytes = ((static_cast<std::size_t>(n) * sizeof(T) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, bytes);
    DINO_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    return static_cast<T*>(p);
  }
  static void deallocate(void* p) { std::free(p); }

  template <class T>
  static void copy_from_host(T* dst, const T* src, Index n) {
    if (n) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
  }
  template <class T>
  static void copy_to_host(T* dst, const T* src, Index n) {
    if (n) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
  }
  template <class T>
  static void copy(T* dst, const T* src, Index n) {
    if (n) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(T));
  }
  template <class T>
  static void fill(T* dst, Index n, T value) {
    parallel_for(n, [=](Index i) { dst[i] = value; });
  }
};

}  // namespace dino::cpu

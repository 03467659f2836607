// The two backends are types: dino::Cpu (backends/cpu) and dino::Cuda (backends/cuda). Each is a struct of
// static operations plus an explicit context Ctx<B>. This header only names them, so that the core
// and the layers never include Eigen or CUDA headers.
#pragma once
#include <type_traits>

namespace dino {

struct Cpu;
struct Cuda;
template <class B>
struct Ctx;

// Specialised to true by <dino/cpu.hpp> and <dino/cuda.hpp>.
template <class B>
struct backend_defined : std::false_type {};

template <class T, class B>
struct check_template_args {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "the scalar type must be float or double");
  static_assert(std::is_same_v<B, Cpu> || std::is_same_v<B, Cuda>, "the backend must be dino::Cpu or dino::Cuda");
  static_assert(backend_defined<B>::value,
                "the backend is declared but not defined: include <dino/cpu.hpp> (or <dino/cuda.hpp> under nvcc)");
  static constexpr bool ok = true;
};

// Opens every class template over (T, B).
#define DINO_CHECK_TEMPLATE_ARGS(T, B) static_assert(::dino::check_template_args<T, B>::ok)

}  // namespace dino

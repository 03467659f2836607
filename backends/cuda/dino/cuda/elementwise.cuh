// CUDA elementwise maps (twin of cpu/elementwise.hpp); each element follows the rule of dino/core/math.hpp.
#pragma once
#include "dino/core/math.hpp"
#include "dino/cuda/launch.cuh"

namespace dino::cuda {

template <class T>
struct ReluFwd {
  const T* x;
  T* y;
  __device__ void operator()(Index i) const { y[i] = math::relu(x[i]); }
};
template <class T>
struct ReluBwd {
  const T *y, *dy;
  T* dx;
  __device__ void operator()(Index i) const { dx[i] = math::relu_grad(y[i], dy[i]); }
};
template <class T>
struct GeluFwd {
  const T* x;
  T* y;
  __device__ void operator()(Index i) const { y[i] = math::gelu(x[i]); }
};
template <class T>
struct GeluBwd {
  const T *x, *dy;
  T* dx;
  __device__ void operator()(Index i) const { dx[i] = dy[i] * math::gelu_grad(x[i]); }
};
template <class T>
struct AddFn {
  const T *a, *b;
  T* out;
  __device__ void operator()(Index i) const { out[i] = a[i] + b[i]; }
};
template <class T>
struct AxpyFn {
  T alpha;
  const T* x;
  T* y;
  __device__ void operator()(Index i) const { y[i] += alpha * x[i]; }
};
template <class T>
struct ScaleFn {
  T alpha;
  T* x;
  __device__ void operator()(Index i) const { x[i] *= alpha; }
};
template <class T>
struct EmaFn {
  T* teacher;
  const T* student;
  T m;
  __device__ void operator()(Index i) const { teacher[i] = math::ema(teacher[i], student[i], m); }
};

struct ElementwiseOps {
  template <class T>
  static void relu_forward(Ctx<Cuda>&, const T* x, T* y, Index n) { for_each(n, ReluFwd<T>{x, y}); }
  template <class T>
  static void relu_backward(Ctx<Cuda>&, const T* y, const T* dy, T* dx, Index n) {
    for_each(n, ReluBwd<T>{y, dy, dx});
  }
  template <class T>
  static void gelu_forward(Ctx<Cuda>&, const T* x, T* y, Index n) { for_each(n, GeluFwd<T>{x, y}); }
  template <class T>
  static void gelu_backward(Ctx<Cuda>&, const T* x, const T* dy, T* dx, Index n) {
    for_each(n, GeluBwd<T>{x, dy, dx});
  }
  template <class T>
  static void add(Ctx<Cuda>&, const T* a, const T* b, T* out, Index n) { for_each(n, AddFn<T>{a, b, out}); }
  template <class T>
  static void axpy(Ctx<Cuda>&, T alpha, const T* x, T* y, Index n) { for_each(n, AxpyFn<T>{alpha, x, y}); }
  template <class T>
  static void scale(Ctx<Cuda>&, T alpha, T* x, Index n) { for_each(n, ScaleFn<T>{alpha, x}); }
  template <class T>
  static void ema_update(Ctx<Cuda>&, T* teacher, const T* student, T m, Index n) {
    for_each(n, EmaFn<T>{teacher, student, m});
  }
};

}  // namespace dino::cuda

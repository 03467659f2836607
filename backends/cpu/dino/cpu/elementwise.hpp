// CPU elementwise maps: activations and their gradients, sums and scalings, the EMA update. The arithmetic
// of each element is the shared rule of dino/core/math.hpp.
#pragma once
#include "dino/core/math.hpp"
#include "dino/cpu/parallel.hpp"

namespace dino::cpu {

struct ElementwiseOps {
  template <class T>
  static void relu_forward(Ctx<Cpu>&, const T* x, T* y, Index n) {
    parallel_for(n, [=](Index i) { y[i] = math::relu(x[i]); });
  }
  // dx = dy where y > 0 (y is the forward output).
  template <class T>
  static void relu_backward(Ctx<Cpu>&, const T* y, const T* dy, T* dx, Index n) {
    parallel_for(n, [=](Index i) { dx[i] = math::relu_grad(y[i], dy[i]); });
  }
  template <class T>
  static void gelu_forward(Ctx<Cpu>&, const T* x, T* y, Index n) {
    parallel_for(n, [=](Index i) { y[i] = math::gelu(x[i]); });
  }
  // dx = dy * gelu'(x) (x is the forward input).
  template <class T>
  static void gelu_backward(Ctx<Cpu>&, const T* x, const T* dy, T* dx, Index n) {
    parallel_for(n, [=](Index i) { dx[i] = dy[i] * math::gelu_grad(x[i]); });
  }
  // out = a + b (out may alias a or b).
  template <class T>
  static void add(Ctx<Cpu>&, const T* a, const T* b, T* out, Index n) {
    parallel_for(n, [=](Index i) { out[i] = a[i] + b[i]; });
  }
  // y += alpha * x.
  template <class T>
  static void axpy(Ctx<Cpu>&, T alpha, const T* x, T* y, Index n) {
    parallel_for(n, [=](Index i) { y[i] += alpha * x[i]; });
  }
  // x *= alpha.
  template <class T>
  static void scale(Ctx<Cpu>&, T alpha, T* x, Index n) {
    parallel_for(n, [=](Index i) { x[i] *= alpha; });
  }
  // teacher = m * teacher + (1 - m) * student.
  template <class T>
  static void ema_update(Ctx<Cpu>&, T* teacher, const T* student, T m, Index n) {
    parallel_for(n, [=](Index i) { teacher[i] = math::ema(teacher[i], student[i], m); });
  }
};

}  // namespace dino::cpu

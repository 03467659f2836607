// Pointwise activations: ReLU (torch.nn.ReLU) and exact, erf-based GELU (torch.nn.GELU()).
#pragma once
#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class ReLU : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;
  explicit ReLU(const std::string& name = "") : Base(name) {}

  Shape output_shape(const Shape& in) const override { return in; }
  // Saved: the output (its sign is the mask).
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.resize(x.shape());
    B::relu_forward(ctx, x.data(), y.data(), x.numel());
    this->keep(ctx, x, y, saved);
  }
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    if (!this->needs_input_grad_) return;
    dx.resize(saved.y->shape());
    B::relu_backward(ctx, saved.y->data(), dy.data(), dx.data(), dy.numel());
  }
};

template <class T, class B>
class GELU : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;
  explicit GELU(const std::string& name = "") : Base(name) {}

  Shape output_shape(const Shape& in) const override { return in; }
  // Saved: the input.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.resize(x.shape());
    B::gelu_forward(ctx, x.data(), y.data(), x.numel());
    this->keep(ctx, x, y, saved);
  }
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    if (!this->needs_input_grad_) return;
    dx.resize(saved.x->shape());
    B::gelu_backward(ctx, saved.x->data(), dy.data(), dx.data(), dy.numel());
  }
};

}  // namespace dino

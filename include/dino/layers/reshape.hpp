// Shape-only layers: Identity (torch.nn.Identity) and Flatten (torch.nn.Flatten(1): [N, ...] -> [N, prod]).
// Both copy, since every module writes its own output tensor.
#pragma once
#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class Identity : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;
  explicit Identity(const std::string& name = "") : Base(name) {}

  Shape output_shape(const Shape& in) const override { return in; }
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.copy_from(x);
    this->keep(ctx, x, y, saved);
  }
  void backward(Ctx<B>&, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    if (this->needs_input_grad_) dx.copy_from(dy);
  }
};

template <class T, class B>
class Flatten : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;
  explicit Flatten(const std::string& name = "") : Base(name) {}

  Shape output_shape(const Shape& in) const override {
    DINO_CHECK(in.rank() >= 1, "Flatten '", this->name_, "' needs at least one dimension");
    return {in[0], in[0] == 0 ? 0 : in.numel() / in[0]};
  }
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.copy_from(x);
    y.reshape(output_shape(x.shape()));
    this->keep(ctx, x, y, saved);
  }
  void backward(Ctx<B>&, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    if (!this->needs_input_grad_) return;
    dx.copy_from(dy);
    dx.reshape(saved.x->shape());
  }
};

}  // namespace dino

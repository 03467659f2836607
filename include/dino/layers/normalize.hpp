// L2 feature normalisation over the last dimension, y = x / max(||x||_2, 1e-12), as
// torch.nn.functional.normalize(x, dim=-1): the head's 'fn' slot; with detach_norm the denominator is treated
// as a constant in backward (the 'fnd' slot).
#pragma once
#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class L2Normalize : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;
  explicit L2Normalize(const std::string& name = "", bool detach_norm = false)
      : Base(name), detach_norm_(detach_norm) {}
  bool detach_norm() const { return detach_norm_; }

  Shape output_shape(const Shape& in) const override {
    DINO_CHECK(in.rank() >= 1, "L2Normalize '", this->name_, "' needs at least one dimension");
    return in;
  }
  // Saved: tensor 0 = the row norms.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.resize(output_shape(x.shape()));
    const Index cols = x.shape().size(-1), rows = cols ? x.numel() / cols : 0;
    TensorT& norms = saved.tensor(0);
    norms.resize({rows});
    B::l2_normalize_rows_forward(ctx, x.data(), rows, cols, T(kEps), y.data(), norms.data());
    this->keep(ctx, x, y, saved);
  }
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    if (!this->needs_input_grad_) return;
    const TensorT& y = *saved.y;
    const Index cols = y.shape().size(-1), rows = cols ? y.numel() / cols : 0;
    dx.resize(y.shape());
    B::l2_normalize_rows_backward(ctx, y.data(), saved.tensor(0).data(), dy.data(), rows, cols, T(kEps),
                                  detach_norm_, dx.data());
  }

 private:
  static constexpr double kEps = 1e-12;
  bool detach_norm_;
};

}  // namespace dino

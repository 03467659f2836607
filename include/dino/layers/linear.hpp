// Linear: y = x W^T + b over the last dimension, as torch.nn.Linear; with weight_norm, each output row of W
// is first divided by max(||W_row||_2, 1e-12) and gradients flow through that division (the testbed's
// 'wn' slots of the L2 bottleneck, spec A4).
#pragma once
#include <cmath>

#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class Linear : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index in = 0, out = 0;
    bool bias = true;
    bool weight_norm = false;
  };

  // Registers "<name>.weight" [out, in] and "<name>.bias" [out].
  Linear(ModelState<T, B>& state, const std::string& name, Options o) : Base(name), o_(o), params_(state.params) {
    DINO_CHECK(o.in > 0 && o.out > 0, "Linear '", name, "': dimensions must be positive, got in=", o.in,
               " out=", o.out);
    weight_ = params_.add(this->child_name("weight"), {o.out, o.in});
    if (o.bias) bias_ = params_.add(this->child_name("bias"), {o.out});
  }

  const Options& options() const { return o_; }
  Index weight_id() const { return weight_; }
  Index bias_id() const { return bias_; }

  Shape output_shape(const Shape& in) const override {
    DINO_CHECK(in.rank() >= 1 && in.size(-1) == o_.in, "Linear '", this->name_, "' expects [..., ", o_.in,
               "], got ", in.str());
    Shape s = in;
    s[s.rank() - 1] = o_.out;
    return s;
  }

  // torch.nn.Linear's default init: weight and bias U(-1/sqrt(in), 1/sqrt(in)).
  void reset_parameters(Generator& gen) override {
    const double bound = 1.0 / std::sqrt(static_cast<double>(o_.in));
    auto w = gen.uniform_vector<T>(static_cast<std::size_t>(o_.in * o_.out), -bound, bound);
    B::copy_from_host(params_.value(weight_), w.data(), o_.in * o_.out);
    if (bias_ >= 0) {
      auto b = gen.uniform_vector<T>(static_cast<std::size_t>(o_.out), -bound, bound);
      B::copy_from_host(params_.value(bias_), b.data(), o_.out);
    }
  }

  // x [..., in] -> y [..., out]. Saved: the normalised weight and the row norms (weight_norm only).
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.resize(output_shape(x.shape()));
    const Index rows = x.numel() / o_.in;
    const T* w = params_.value(weight_);
    if (o_.weight_norm) {
      TensorT& wn = saved.tensor(0);
      TensorT& norms = saved.tensor(1);
      wn.resize({o_.out, o_.in});
      norms.resize({o_.out});
      B::l2_normalize_rows_forward(ctx, w, o_.out, o_.in, T(kEps), wn.data(), norms.data());
      w = wn.data();
    }
    B::gemm(ctx, false, true, rows, o_.out, o_.in, T(1), x.data(), o_.in, w, o_.in, T(0), y.data(), o_.out);
    if (bias_ >= 0) B::add_row_vector(ctx, y.data(), rows, o_.out, params_.value(bias_));
    this->keep(ctx, x, y, saved);
  }

  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    const TensorT& x = *saved.x;
    DINO_CHECK(dy.shape() == saved.y->shape(), "Linear '", this->name_, "': gradient shape ", dy.shape().str(),
               " does not match the output ", saved.y->shape().str());
    const Index rows = x.numel() / o_.in;
    const T* w = o_.weight_norm ? saved.tensor(0).data() : params_.value(weight_);
    if (this->needs_input_grad_) {
      dx.resize(x.shape());
      B::gemm(ctx, false, false, rows, o_.in, o_.out, T(1), dy.data(), o_.out, w, o_.in, T(0), dx.data(), o_.in);
    }
    T* dw = params_.grad(weight_);
    if (o_.weight_norm) {
      // The gradient with respect to the normalised rows, then through the normalisation.
      TensorT& dwn = saved.tensor(2);
      dwn.resize({o_.out, o_.in});
      B::gemm(ctx, true, false, o_.out, o_.in, rows, T(1), dy.data(), o_.out, x.data(), o_.in, T(0), dwn.data(),
              o_.in);
      B::l2_normalize_rows_backward(ctx, saved.tensor(0).data(), saved.tensor(1).data(), dwn.data(), o_.out, o_.in,
                                    T(kEps), false, dwn.data());
      B::axpy(ctx, T(1), dwn.data(), dw, o_.out * o_.in);
    } else {
      B::gemm(ctx, true, false, o_.out, o_.in, rows, T(1), dy.data(), o_.out, x.data(), o_.in, T(1), dw, o_.in);
    }
    if (bias_ >= 0) B::sum_rows(ctx, dy.data(), rows, o_.out, T(1), params_.grad(bias_));
  }

 private:
  static constexpr double kEps = 1e-12;
  Options o_;
  NamedStore<T, B>& params_;
  Index weight_ = -1, bias_ = -1;
};

}  // namespace dino

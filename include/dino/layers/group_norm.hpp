// GroupNorm on [N, C, *] as torch.nn.GroupNorm(num_groups, num_channels, eps, affine): statistics per sample
// and group of C/G consecutive channels, biased variance, the same in train and eval mode. It also serves the
// testbed's InstanceNorm (G = C), GroupNorm8 (G = C/8) and LayerNorm (G = 1) overrides (spec 3.7).
#pragma once
#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class GroupNorm : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index num_groups = 0;
    Index num_channels = 0;
    double eps = 1e-5;
    bool affine = true;
  };

  // Registers "<name>.weight" and "<name>.bias" [C] when affine.
  GroupNorm(ModelState<T, B>& state, const std::string& name, Options o) : Base(name), o_(o), params_(state.params) {
    DINO_CHECK(o.num_groups > 0 && o.num_channels > 0 && o.num_channels % o.num_groups == 0, "GroupNorm '", name,
               "': num_channels must be a positive multiple of num_groups, got num_channels=", o.num_channels,
               " num_groups=", o.num_groups);
    DINO_CHECK(o.eps >= 0, "GroupNorm '", name, "': eps must be >= 0, got ", o.eps);
    if (o.affine) {
      weight_ = params_.add(this->child_name("weight"), {o.num_channels});
      bias_ = params_.add(this->child_name("bias"), {o.num_channels});
    }
  }

  const Options& options() const { return o_; }
  Index weight_id() const { return weight_; }
  Index bias_id() const { return bias_; }

  Shape output_shape(const Shape& in) const override {
    DINO_CHECK(in.rank() >= 2 && in[1] == o_.num_channels, "GroupNorm '", this->name_, "' expects [N, ",
               o_.num_channels, ", *], got ", in.str());
    return in;
  }

  // As torch.nn.GroupNorm's construction: weight 1, bias 0.
  void reset_parameters(Generator& gen) override {
    (void)gen;
    if (!o_.affine) return;
    B::fill(params_.value(weight_), o_.num_channels, T(1));
    B::fill(params_.value(bias_), o_.num_channels, T(0));
  }

  // x [N, C, *] -> y of the same shape. Saved: tensor 0 = [2, N, G] mean and invstd; tensor 1 = [2, N, C]
  // per (sample, channel) gradient sums of backward.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.resize(output_shape(x.shape()));
    const Dims d = dims(x.shape());
    TensorT& stats = saved.tensor(0);
    stats.resize({2, d.n, o_.num_groups});
    T* mean = stats.data();
    T* invstd = stats.data() + d.n * o_.num_groups;
    B::group_norm_stats(ctx, x.data(), d.n, d.c, d.s, o_.num_groups, T(o_.eps), mean, invstd);
    B::group_norm_forward(ctx, x.data(), d.n, d.c, d.s, o_.num_groups, mean, invstd, weight(), bias(), y.data());
    this->keep(ctx, x, y, saved);
  }

  // Adds into dweight, dbias (when affine); overwrites dx [N, C, *].
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    const TensorT& x = *saved.x;
    DINO_CHECK(dy.shape() == x.shape(), "GroupNorm '", this->name_, "': gradient shape ", dy.shape().str(),
               " does not match the output ", x.shape().str());
    if (!o_.affine && !this->needs_input_grad_) return;
    const Dims d = dims(x.shape());
    const TensorT& stats = saved.tensor(0);
    const T* mean = stats.data();
    const T* invstd = stats.data() + d.n * o_.num_groups;
    TensorT& sums = saved.tensor(1);
    sums.resize({2, d.n, d.c});
    T* sum_dy = sums.data();
    T* sum_dy_xhat = sums.data() + d.n * d.c;
    B::group_norm_backward_reduce(ctx, dy.data(), x.data(), d.n, d.c, d.s, o_.num_groups, mean, invstd, sum_dy,
                                  sum_dy_xhat);
    if (o_.affine) {
      // Summed over the samples in index order (thread-count independent).
      B::sum_rows(ctx, sum_dy_xhat, d.n, d.c, T(1), params_.grad(weight_));
      B::sum_rows(ctx, sum_dy, d.n, d.c, T(1), params_.grad(bias_));
    }
    if (!this->needs_input_grad_) return;
    dx.resize(x.shape());
    B::group_norm_backward_input(ctx, dy.data(), x.data(), d.n, d.c, d.s, o_.num_groups, mean, invstd, weight(),
                                 sum_dy, sum_dy_xhat, dx.data());
  }

 private:
  struct Dims {
    Index n, c, s;
  };
  // [N, C, S] with S the product of the dimensions after C.
  static Dims dims(const Shape& in) {
    Index s = 1;
    for (int i = 2; i < in.rank(); ++i) s *= in[i];
    return {in[0], in[1], s};
  }
  const T* weight() const { return o_.affine ? params_.value(weight_) : nullptr; }
  const T* bias() const { return o_.affine ? params_.value(bias_) : nullptr; }

  Options o_;
  NamedStore<T, B>& params_;
  Index weight_ = -1, bias_ = -1;
};

}  // namespace dino

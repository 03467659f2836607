// Conv2d: 2-d convolution over [N, C, H, W], as torch.nn.Conv2d with groups 1 and dilation 1: explicit zero
// padding, or padding='same' (total k - 1, (k - 1) / 2 on the top/left and the rest on the bottom/right).
#pragma once
#include <cmath>

#include "dino/core/math.hpp"
#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class Conv2d : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index in_channels = 0, out_channels = 0;
    Index kernel_h = 3, kernel_w = 3;
    Index stride_h = 1, stride_w = 1;
    Index pad_h = 0, pad_w = 0;  // zero padding on both sides
    bool same = false;           // padding='same' (stride 1 only)
    bool bias = true;
  };

  // Registers "<name>.weight" [out, in, kh, kw] and "<name>.bias" [out].
  Conv2d(ModelState<T, B>& state, const std::string& name, Options o) : Base(name), o_(o), params_(state.params) {
    DINO_CHECK(o.in_channels > 0 && o.out_channels > 0, "Conv2d '", name,
               "': channel counts must be positive, got in=", o.in_channels, " out=", o.out_channels);
    DINO_CHECK(o.kernel_h > 0 && o.kernel_w > 0, "Conv2d '", name, "': kernel size must be positive, got ",
               o.kernel_h, "x", o.kernel_w);
    DINO_CHECK(o.stride_h > 0 && o.stride_w > 0, "Conv2d '", name, "': stride must be positive, got ", o.stride_h,
               "x", o.stride_w);
    DINO_CHECK(o.pad_h >= 0 && o.pad_w >= 0, "Conv2d '", name, "': padding must be non-negative, got ", o.pad_h,
               "x", o.pad_w);
    DINO_CHECK(!o.same || (o.stride_h == 1 && o.stride_w == 1), "Conv2d '", name,
               "': padding='same' is not supported for strided convolutions (stride ", o.stride_h, "x", o.stride_w,
               ")");
    DINO_CHECK(!o.same || (o.pad_h == 0 && o.pad_w == 0), "Conv2d '", name,
               "': give either padding='same' or explicit padding, not both");
    weight_ = params_.add(this->child_name("weight"), {o.out_channels, o.in_channels, o.kernel_h, o.kernel_w});
    if (o.bias) bias_ = params_.add(this->child_name("bias"), {o.out_channels});
  }

  const Options& options() const { return o_; }
  Index weight_id() const { return weight_; }
  Index bias_id() const { return bias_; }  // -1 without bias

  Shape output_shape(const Shape& in) const override {
    const math::Window2d g = window(in);
    return {g.n, o_.out_channels, g.oh, g.ow};
  }

  // torch.nn.Conv2d's default init: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in*kh*kw
  // (kaiming_uniform with a = sqrt(5) for the weight).
  void reset_parameters(Generator& gen) override {
    const Index fan_in = o_.in_channels * o_.kernel_h * o_.kernel_w;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    const Index nw = o_.out_channels * fan_in;
    auto w = gen.uniform_vector<T>(static_cast<std::size_t>(nw), -bound, bound);
    B::copy_from_host(params_.value(weight_), w.data(), nw);
    if (bias_ >= 0) {
      auto b = gen.uniform_vector<T>(static_cast<std::size_t>(o_.out_channels), -bound, bound);
      B::copy_from_host(params_.value(bias_), b.data(), o_.out_channels);
    }
  }

  // x [N, in, H, W] -> y [N, out, H', W']. Saved: nothing beyond x.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    const math::Window2d g = window(x.shape());
    y.resize({g.n, o_.out_channels, g.oh, g.ow});
    B::conv2d_forward(ctx, g, o_.out_channels, x.data(), params_.value(weight_),
                      bias_ >= 0 ? params_.value(bias_) : static_cast<const T*>(nullptr), y.data());
    this->keep(ctx, x, y, saved);
  }

  // Adds into dweight and dbias; overwrites dx.
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    const TensorT& x = *saved.x;
    DINO_CHECK(dy.shape() == saved.y->shape(), "Conv2d '", this->name_, "': gradient shape ", dy.shape().str(),
               " does not match the output ", saved.y->shape().str());
    const math::Window2d g = window(x.shape());
    T* dxp = nullptr;
    if (this->needs_input_grad_) {
      dx.resize(x.shape());
      dxp = dx.data();
    }
    B::conv2d_backward(ctx, g, o_.out_channels, x.data(), params_.value(weight_), dy.data(), dxp,
                       params_.grad(weight_), bias_ >= 0 ? params_.grad(bias_) : static_cast<T*>(nullptr));
  }

 private:
  // The window geometry for an input shape; throws if the input does not fit.
  math::Window2d window(const Shape& in) const {
    DINO_CHECK(in.rank() == 4, "Conv2d '", this->name_, "' expects a 4-d input [N, ", o_.in_channels,
               ", H, W], got ", in.str());
    DINO_CHECK(in[1] == o_.in_channels, "Conv2d '", this->name_, "' expects ", o_.in_channels,
               " input channels, got ", in.str());
    DINO_CHECK(in[2] > 0 && in[3] > 0, "Conv2d '", this->name_, "' expects a non-empty image, got ", in.str());
    math::Window2d g;
    g.n = in[0];
    g.c = in[1];
    g.h = in[2];
    g.w = in[3];
    g.kh = o_.kernel_h;
    g.kw = o_.kernel_w;
    g.sh = o_.stride_h;
    g.sw = o_.stride_w;
    // 'same': the top/left side gets the smaller half of k - 1; the output keeps the input size.
    g.ph = o_.same ? (o_.kernel_h - 1) / 2 : o_.pad_h;
    g.pw = o_.same ? (o_.kernel_w - 1) / 2 : o_.pad_w;
    const Index hp = o_.same ? g.h + o_.kernel_h - 1 : g.h + 2 * o_.pad_h;
    const Index wp = o_.same ? g.w + o_.kernel_w - 1 : g.w + 2 * o_.pad_w;
    DINO_CHECK(hp >= g.kh && wp >= g.kw, "Conv2d '", this->name_, "': padded input size ", hp, "x", wp,
               " is smaller than the kernel ", g.kh, "x", g.kw, " (input ", in.str(), ")");
    g.oh = (hp - g.kh) / g.sh + 1;
    g.ow = (wp - g.kw) / g.sw + 1;
    return g;
  }

  Options o_;
  NamedStore<T, B>& params_;
  Index weight_ = -1, bias_ = -1;
};

}  // namespace dino

// 2-d pooling over [N, C, H, W]: MaxPool2d, AvgPool2d (torch.nn.MaxPool2d / AvgPool2d with square windows,
// ceil_mode False, dilation 1) and AdaptiveAvgPool2d (torch.nn.AdaptiveAvgPool2d, any output size).
#pragma once
#include "dino/core/math.hpp"
#include "dino/core/module.hpp"

namespace dino {

namespace detail {
// The geometry of a k x k pool with stride s and padding p on input `in`, with torch's checks.
inline math::Window2d pool_window(const char* kind, const std::string& name, Index k, Index s, Index p,
                                  const Shape& in) {
  DINO_CHECK(in.rank() == 4, kind, " '", name, "' expects a 4-d input [N, C, H, W], got ", in.str());
  DINO_CHECK(in[2] > 0 && in[3] > 0, kind, " '", name, "' expects a non-empty image, got ", in.str());
  math::Window2d g;
  g.n = in[0];
  g.c = in[1];
  g.h = in[2];
  g.w = in[3];
  g.kh = g.kw = k;
  g.sh = g.sw = s;
  g.ph = g.pw = p;
  const Index hp = g.h + 2 * p, wp = g.w + 2 * p;
  DINO_CHECK(hp >= k && wp >= k, kind, " '", name, "': the ", k, "x", k, " window does not fit the padded input ",
             hp, "x", wp, " (input ", in.str(), ")");
  g.oh = (hp - k) / s + 1;
  g.ow = (wp - k) / s + 1;
  return g;
}
inline void check_pool_options(const char* kind, const std::string& name, Index k, Index s, Index p) {
  DINO_CHECK(k > 0, kind, " '", name, "': kernel size must be positive, got ", k);
  DINO_CHECK(s > 0, kind, " '", name, "': stride must be positive, got ", s);
  DINO_CHECK(p >= 0 && 2 * p <= k, kind, " '", name, "': padding must be between 0 and half the kernel size (",
             k, "), got ", p);
}
}  // namespace detail

template <class T, class B>
class MaxPool2d : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index kernel = 2;
    Index stride = 0;  // 0: the kernel size
    Index padding = 0;
  };

  MaxPool2d(const std::string& name, Options o) : Base(name), o_(o) {
    if (o_.stride == 0) o_.stride = o_.kernel;
    detail::check_pool_options("MaxPool2d", name, o_.kernel, o_.stride, o_.padding);
  }
  const Options& options() const { return o_; }

  Shape output_shape(const Shape& in) const override {
    const math::Window2d g = window(in);
    return {g.n, g.c, g.oh, g.ow};
  }
  // x [N, C, H, W] -> y [N, C, H', W'], the padding counting as -inf. Saved: nothing beyond x (backward
  // finds each window's first maximum again).
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    const math::Window2d g = window(x.shape());
    y.resize({g.n, g.c, g.oh, g.ow});
    B::max_pool2d_forward(ctx, g, x.data(), y.data());
    this->keep(ctx, x, y, saved);
  }
  // Overwrites dx: each output's gradient goes to the first maximum of its window (torch's CPU rule).
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    DINO_CHECK(dy.shape() == saved.y->shape(), "MaxPool2d '", this->name_, "': gradient shape ", dy.shape().str(),
               " does not match the output ", saved.y->shape().str());
    if (!this->needs_input_grad_) return;
    const TensorT& x = *saved.x;
    dx.resize(x.shape());
    B::max_pool2d_backward(ctx, window(x.shape()), x.data(), dy.data(), dx.data());
  }

 private:
  math::Window2d window(const Shape& in) const {
    return detail::pool_window("MaxPool2d", this->name_, o_.kernel, o_.stride, o_.padding, in);
  }
  Options o_;
};

template <class T, class B>
class AvgPool2d : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index kernel = 2;
    Index stride = 0;  // 0: the kernel size
    Index padding = 0;
    bool count_include_pad = true;
  };

  AvgPool2d(const std::string& name, Options o) : Base(name), o_(o) {
    if (o_.stride == 0) o_.stride = o_.kernel;
    detail::check_pool_options("AvgPool2d", name, o_.kernel, o_.stride, o_.padding);
  }
  const Options& options() const { return o_; }

  Shape output_shape(const Shape& in) const override {
    const math::Window2d g = window(in);
    return {g.n, g.c, g.oh, g.ow};
  }
  // x [N, C, H, W] -> y [N, C, H', W']: window means, the zero padding counted in the divisor when
  // count_include_pad. Saved: nothing.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    const math::Window2d g = window(x.shape());
    y.resize({g.n, g.c, g.oh, g.ow});
    B::avg_pool2d_forward(ctx, g, o_.count_include_pad, x.data(), y.data());
    this->keep(ctx, x, y, saved);
  }
  // Overwrites dx.
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    DINO_CHECK(dy.shape() == saved.y->shape(), "AvgPool2d '", this->name_, "': gradient shape ", dy.shape().str(),
               " does not match the output ", saved.y->shape().str());
    if (!this->needs_input_grad_) return;
    dx.resize(saved.x->shape());
    B::avg_pool2d_backward(ctx, window(saved.x->shape()), o_.count_include_pad, dy.data(), dx.data());
  }

 private:
  math::Window2d window(const Shape& in) const {
    return detail::pool_window("AvgPool2d", this->name_, o_.kernel, o_.stride, o_.padding, in);
  }
  Options o_;
};

template <class T, class B>
class AdaptiveAvgPool2d : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  // Output bin i of a side of length L covers [floor(i * L / out), ceil((i + 1) * L / out)).
  AdaptiveAvgPool2d(const std::string& name, Index out_h, Index out_w) : Base(name), out_h_(out_h), out_w_(out_w) {
    DINO_CHECK(out_h > 0 && out_w > 0, "AdaptiveAvgPool2d '", name, "': output size must be positive, got ", out_h,
               "x", out_w);
  }
  Index out_h() const { return out_h_; }
  Index out_w() const { return out_w_; }

  Shape output_shape(const Shape& in) const override {
    const math::Window2d g = window(in);
    return {g.n, g.c, g.oh, g.ow};
  }
  // x [N, C, H, W] -> y [N, C, out_h, out_w]. Saved: nothing.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    const math::Window2d g = window(x.shape());
    y.resize({g.n, g.c, g.oh, g.ow});
    B::adaptive_avg_pool2d_forward(ctx, g, x.data(), y.data());
    this->keep(ctx, x, y, saved);
  }
  // Overwrites dx.
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    DINO_CHECK(dy.shape() == saved.y->shape(), "AdaptiveAvgPool2d '", this->name_, "': gradient shape ",
               dy.shape().str(), " does not match the output ", saved.y->shape().str());
    if (!this->needs_input_grad_) return;
    dx.resize(saved.x->shape());
    B::adaptive_avg_pool2d_backward(ctx, window(saved.x->shape()), dy.data(), dx.data());
  }

 private:
  math::Window2d window(const Shape& in) const {
    DINO_CHECK(in.rank() == 4, "AdaptiveAvgPool2d '", this->name_, "' expects a 4-d input [N, C, H, W], got ",
               in.str());
    DINO_CHECK(in[2] > 0 && in[3] > 0, "AdaptiveAvgPool2d '", this->name_, "' expects a non-empty image, got ",
               in.str());
    math::Window2d g;
    g.n = in[0];
    g.c = in[1];
    g.h = in[2];
    g.w = in[3];
    g.oh = out_h_;
    g.ow = out_w_;
    return g;
  }
  Index out_h_, out_w_;
};

}  // namespace dino

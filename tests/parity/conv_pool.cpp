// Parity with PyTorch of Conv2d (explicit, asymmetric, strided and 'same' padding, with and without bias),
// MaxPool2d, AvgPool2d (count_include_pad on and off) and AdaptiveAvgPool2d.
#include "parity.hpp"

namespace dino::parity {
namespace {

const Kinds kConvPool{"Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"};

template <class T>
std::unique_ptr<Module<T, B>> make_conv_pool(ModelState<T, B>& st, const Case& c) {
  const std::string kind = c.kind();
  if (kind == "Conv2d") {
    typename Conv2d<T, B>::Options o;
    o.in_channels = opt_index(c, "in");
    o.out_channels = opt_index(c, "out");
    o.kernel_h = opt_index(c, "kernel", 0);
    o.kernel_w = opt_index(c, "kernel", 1);
    o.stride_h = opt_index(c, "stride", 0);
    o.stride_w = opt_index(c, "stride", 1);
    o.pad_h = opt_index(c, "padding", 0);
    o.pad_w = opt_index(c, "padding", 1);
    o.same = opt_bool(c, "same");
    o.bias = opt_bool(c, "bias");
    return std::make_unique<Conv2d<T, B>>(st, "", o);
  }
  if (kind == "MaxPool2d")
    return std::make_unique<MaxPool2d<T, B>>(
        "", typename MaxPool2d<T, B>::Options{opt_index(c, "kernel"), opt_index(c, "stride"), opt_index(c, "padding")});
  if (kind == "AvgPool2d")
    return std::make_unique<AvgPool2d<T, B>>(
        "", typename AvgPool2d<T, B>::Options{opt_index(c, "kernel"), opt_index(c, "stride"), opt_index(c, "padding"),
                                              opt_bool(c, "count_include_pad")});
  if (kind == "AdaptiveAvgPool2d")
    return std::make_unique<AdaptiveAvgPool2d<T, B>>("", opt_index(c, "out", 0), opt_index(c, "out", 1));
  fail("no builder for kind ", kind);
}

TEST_CASE_TEMPLATE("parity: Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d", T, float, double) {
  run_kinds<T>(kConvPool, [](ModelState<T, B>& st, const Case& c) { return make_conv_pool<T>(st, c); });
}

}  // namespace
}  // namespace dino::parity

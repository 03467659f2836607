// Parity with PyTorch of Linear (with and without bias and weight normalisation), ReLU, GELU, the 'fn'/'fnd'
// normalisations, Identity and Flatten.
#include "parity.hpp"

namespace dino::parity {
namespace {

const Kinds kBasic{"Linear", "ReLU", "GELU", "L2Normalize", "Identity", "Flatten"};

template <class T>
std::unique_ptr<Module<T, B>> make_basic(ModelState<T, B>& st, const Case& c) {
  const std::string kind = c.kind();
  if (kind == "Linear")
    return std::make_unique<Linear<T, B>>(st, "",
                                          typename Linear<T, B>::Options{opt_index(c, "in"), opt_index(c, "out"),
                                                                         opt_bool(c, "bias"), opt_bool(c, "weight_norm")});
  if (kind == "ReLU") return std::make_unique<ReLU<T, B>>();
  if (kind == "GELU") return std::make_unique<GELU<T, B>>();
  if (kind == "L2Normalize") return std::make_unique<L2Normalize<T, B>>("", opt_bool(c, "detach"));
  if (kind == "Identity") return std::make_unique<Identity<T, B>>();
  if (kind == "Flatten") return std::make_unique<Flatten<T, B>>();
  fail("no builder for kind ", kind);
}

TEST_CASE_TEMPLATE("parity: Linear, activations, normalisations, Identity, Flatten", T, float, double) {
  run_kinds<T>(kBasic, [](ModelState<T, B>& st, const Case& c) { return make_basic<T>(st, c); });
}

}  // namespace
}  // namespace dino::parity

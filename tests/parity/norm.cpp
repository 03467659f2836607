// Parity with PyTorch of BatchNorm1d and BatchNorm2d (train: batch statistics and the running-stat update;
// eval: the running statistics) and GroupNorm (one channel per group, several, one group, no affine).
#include "parity.hpp"

namespace dino::parity {
namespace {

const Kinds kNorm{"BatchNorm1d", "BatchNorm2d", "GroupNorm"};

template <class T>
std::unique_ptr<Module<T, B>> make_norm(ModelState<T, B>& st, const Case& c) {
  const std::string kind = c.kind();
  if (kind == "BatchNorm1d" || kind == "BatchNorm2d") {
    const typename BatchNorm<T, B>::Options o{opt_index(c, "num_features"), opt_double(c, "eps"),
                                              opt_double(c, "momentum")};
    if (kind == "BatchNorm1d") return std::make_unique<BatchNorm1d<T, B>>(st, "", o);
    return std::make_unique<BatchNorm2d<T, B>>(st, "", o);
  }
  if (kind == "GroupNorm")
    return std::make_unique<GroupNorm<T, B>>(
        st, "", typename GroupNorm<T, B>::Options{opt_index(c, "num_groups"), opt_index(c, "num_channels"),
                                                  opt_double(c, "eps"), opt_bool(c, "affine")});
  fail("no builder for kind ", kind);
}

TEST_CASE_TEMPLATE("parity: BatchNorm1d, BatchNorm2d, GroupNorm", T, float, double) {
  run_kinds<T>(kNorm, [](ModelState<T, B>& st, const Case& c) { return make_norm<T>(st, c); });
}

}  // namespace
}  // namespace dino::parity

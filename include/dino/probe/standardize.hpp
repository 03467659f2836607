// Standardisation of probe features by the train set's statistics: the testbed's dinopl/probing.py
// `normalize_data` (spec §10 step 4): per-feature mean and unbiased std (n-1) of the train rows, a std below
// 10 eps(T) replaced by 1 (sklearn's convention), then x <- (x - mean) / std for train and valid alike.
#pragma once
#include <cmath>
#include <limits>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/tensor.hpp"

namespace dino::probe {

// The per-feature statistics that standardise() applies, on the host.
template <class T>
struct FeatureStats {
  std::vector<T> mean;  // [E]
  std::vector<T> std;   // [E], unbiased; values below 10 eps(T) already replaced by 1
};

// Mean and unbiased std [E] of the rows of x [N, E], N >= 2.
template <class T, class B>
FeatureStats<T> feature_stats(Ctx<B>& ctx, const Tensor<T, B>& x) {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  DINO_CHECK(x.rank() == 2, "probe standardisation: the train features must be [N, E], got ", x.shape().str());
  const Index n = x.size(0), e = x.size(1);
  DINO_CHECK(n >= 2, "probe standardisation: the unbiased std needs at least 2 train rows, got ", n);
  // BatchNorm's statistics over [N, E, 1] give the per-feature mean (deterministic chunked sums); a running
  // update with momentum 1 from zeros stores exactly the unbiased variance, which is what torch.std returns.
  Tensor<T, B> mean({e}), invstd({e}), running_mean({e}), running_var({e});
  running_mean.fill(T(0));
  running_var.fill(T(0));
  B::batch_norm_stats(ctx, x.data(), n, e, Index(1), T(0), T(1), running_mean.data(), running_var.data(), mean.data(),
                      invstd.data());
  FeatureStats<T> s;
  s.mean = running_mean.to_host();
  s.std = running_var.to_host();
  const T tiny = T(10) * std::numeric_limits<T>::epsilon();
  for (T& v : s.std) {
    v = std::sqrt(v);
    if (v < tiny) v = T(1);  // a constant feature stays as it is, minus its mean
  }
  return s;
}

// x [R, E] <- (x - mean) / std, in place.
template <class T, class B>
void standardize(Ctx<B>& ctx, Tensor<T, B>& x, const FeatureStats<T>& s) {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  const Index e = static_cast<Index>(s.mean.size());
  DINO_CHECK(x.rank() == 2 && x.size(1) == e && static_cast<Index>(s.std.size()) == e,
             "probe standardisation: features ", x.shape().str(), " do not match statistics of ", e, " features");
  std::vector<T> inv(s.std.size());
  for (std::size_t j = 0; j < inv.size(); ++j) inv[j] = T(1) / s.std[j];
  const auto mean = Tensor<T, B>::from_host({e}, s.mean);
  const auto invstd = Tensor<T, B>::from_host({e}, inv);
  B::batch_norm_forward(ctx, static_cast<const T*>(x.data()), x.size(0), e, Index(1), mean.data(), invstd.data(),
                        static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), x.data());
}

// normalize_data: standardises train [N, E] and valid [M, E] in place with the train statistics.
template <class T, class B>
void normalize_data(Ctx<B>& ctx, Tensor<T, B>& train, Tensor<T, B>& valid) {
  const FeatureStats<T> s = feature_stats(ctx, train);
  standardize(ctx, train, s);
  standardize(ctx, valid, s);
}

}  // namespace dino::probe

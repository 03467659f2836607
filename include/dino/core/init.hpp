// Parameter initialisers with the distributions of torch.nn.init (the testbed's dinopl/modules/init.py):
// kaiming_normal_(mode='fan_out', nonlinearity='relu'), trunc_normal_, uniform_, constant fills. Values are
// drawn on the host from a dino::Generator and copied into a store entry.
#pragma once
#include <cmath>
#include <vector>

#include "dino/core/params.hpp"
#include "dino/core/random.hpp"

namespace dino::init {

// The inverse error function on (-1, 1): a rational first guess refined by Newton steps on erf, exact to
// double rounding (std has no erfinv).
inline double erfinv(double y) {
  if (y <= -1.0) return -HUGE_VAL;
  if (y >= 1.0) return HUGE_VAL;
  // Giles' single-precision approximation as the starting point.
  double w = -std::log((1.0 - y) * (1.0 + y)), x;
  if (w < 5.0) {
    w -= 2.5;
    double p = 2.81022636e-08;
    for (double c : {3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                     -0.00417768164, 0.246640727, 1.50140941})
      p = c + p * w;
    x = p * y;
  } else {
    w = std::sqrt(w) - 3.0;
    double p = -0.000200214257;
    for (double c : {0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                     0.00943887047, 1.00167406, 2.83297682})
      p = c + p * w;
    x = p * y;
  }
  const double two_over_sqrt_pi = 1.1283791670955126;
  for (int i = 0; i < 3; ++i) x -= (std::erf(x) - y) / (two_over_sqrt_pi * std::exp(-x * x));
  return x;
}

// Standard deviation of kaiming_normal_(mode='fan_out', nonlinearity='relu') for a weight of this shape:
// sqrt(2 / fan_out), fan_out = shape[0] * (product of the dimensions after the second).
inline double kaiming_fan_out_std(const Shape& shape) {
  Index fan_out = shape.size(0);
  for (int i = 2; i < shape.rank(); ++i) fan_out *= shape.size(i);
  return std::sqrt(2.0 / static_cast<double>(fan_out));
}

// n draws of torch.nn.init.trunc_normal_(mean 0, std, a, b): u ~ U(2 Phi(a/std) - 1, 2 Phi(b/std) - 1),
// then erfinv(u) * std * sqrt(2), clamped to [a, b] (a and b are absolute bounds, as in PyTorch).
inline std::vector<double> trunc_normal(Generator& gen, std::size_t n, double std, double a = -2.0, double b = 2.0) {
  const auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
  const double lo = 2.0 * cdf(a / std) - 1.0, hi = 2.0 * cdf(b / std) - 1.0;
  std::vector<double> v(n);
  for (auto& x : v) x = std::fmin(std::fmax(erfinv(gen.uniform(lo, hi)) * std * std::sqrt(2.0), a), b);
  return v;
}

// Writes host values (any arithmetic type) into the store entry `id`, whose size they must match.
template <class T, class B, class V>
void assign(NamedStore<T, B>& store, Index id, const std::vector<V>& values) {
  const Entry& e = store.entry(id);
  DINO_CHECK(static_cast<Index>(values.size()) == e.shape.numel(), "init of '", e.name, "': ", values.size(),
             " values for shape ", e.shape.str());
  std::vector<T> cast(values.begin(), values.end());
  B::copy_from_host(store.value(id), cast.data(), e.shape.numel());
}

// Fills the entry with one value (torch.nn.init.constant_, ones_, zeros_).
template <class T, class B>
void constant(NamedStore<T, B>& store, Index id, double value) {
  assign(store, id, std::vector<T>(static_cast<std::size_t>(store.entry(id).shape.numel()), static_cast<T>(value)));
}

// kaiming_normal_(mode='fan_out', nonlinearity='relu') on a conv or linear weight.
template <class T, class B>
void kaiming_normal_fan_out(NamedStore<T, B>& store, Index id, Generator& gen) {
  const Shape& s = store.entry(id).shape;
  assign(store, id, gen.normal_vector<double>(static_cast<std::size_t>(s.numel()), 0.0, kaiming_fan_out_std(s)));
}

// U(lo, hi) on the entry (torch.nn.init.uniform_).
template <class T, class B>
void uniform(NamedStore<T, B>& store, Index id, Generator& gen, double lo, double hi) {
  assign(store, id, gen.uniform_vector<double>(static_cast<std::size_t>(store.entry(id).shape.numel()), lo, hi));
}

// trunc_normal_(std, a, b) on the entry.
template <class T, class B>
void trunc_normal(NamedStore<T, B>& store, Index id, Generator& gen, double std, double a = -2.0, double b = 2.0) {
  assign(store, id, trunc_normal(gen, static_cast<std::size_t>(store.entry(id).shape.numel()), std, a, b));
}

}  // namespace dino::init

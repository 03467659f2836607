// Counter-based random numbers: every draw is a pure function of (key, counter), the key derived from
// (seed, purpose, epoch, index). Results therefore depend neither on thread counts nor on the order in
// which independent streams are consumed. The distributions are written here (std::*_distribution differ
// between standard libraries).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace dino {

namespace detail {
// SplitMix64's finaliser: a bijective 64-bit mixer with full avalanche.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace detail

// The purposes that separate the uses of one seed (the `purpose` of a Generator key).
namespace purpose {
constexpr std::uint64_t construct = 1;     // PyTorch's construction-time initialisation of the model
constexpr std::uint64_t teacher_init = 2;  // the teacher's initialisation (--t_init_seed)
constexpr std::uint64_t student_init = 3;  // the student's, when --s_init_seed is set
constexpr std::uint64_t sampler = 4;       // the order of the training samples
constexpr std::uint64_t augment = 5;       // crops and augmentations
constexpr std::uint64_t target_noise = 6;  // label and logit noise
constexpr std::uint64_t probe = 7;         // the probes' initialisation and shuffling
}  // namespace purpose

class Generator {
 public:
  // purpose separates independent uses of one seed (init, augmentation, noise, ...).
  explicit Generator(std::uint64_t seed, std::uint64_t purpose = 0, std::uint64_t epoch = 0,
                     std::uint64_t index = 0) {
    key_ = detail::mix64(seed ^ 0x9e3779b97f4a7c15ULL);
    key_ = detail::mix64(key_ ^ (purpose * 0xd1b54a32d192ed03ULL));
    key_ = detail::mix64(key_ ^ (epoch * 0xabc98388fb8fac03ULL));
    key_ = detail::mix64(key_ ^ (index * 0x8cb92ba72f3d8dd7ULL));
  }

  std::uint64_t next_u64() { return detail::mix64(key_ + 0x9e3779b97f4a7c15ULL * ++counter_); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal (Box-Muller; one of the pair, so each draw costs two uniforms and nothing is cached).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }
  double normal(double mean, double std) { return mean + std * normal(); }
  // Uniform integer in [0, n), unbiased (rejection).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
    std::uint64_t v;
    do v = next_u64();
    while (v >= limit);
    return v % n;
  }

  template <class T>
  std::vector<T> uniform_vector(std::size_t n, double lo, double hi) {
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(uniform(lo, hi));
    return v;
  }
  template <class T>
  std::vector<T> normal_vector(std::size_t n, double mean, double std) {
    std::vector<T> v(n);
    for (auto& x : v) x = static_cast<T>(normal(mean, std));
    return v;
  }

 private:
  std::uint64_t key_ = 0;
  std::uint64_t counter_ = 0;
};

}  // namespace dino

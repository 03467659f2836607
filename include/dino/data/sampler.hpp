// Which samples an epoch visits, and in which order: torch.utils.data.RandomSampler (with num_samples) and
// SequentialSampler over a set of dataset indices (spec §2.5), and the testbed's StratifiedSubset for
// --n_samples (spec §2.6, the intended algorithm of A4 / §15 #12).
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/random.hpp"

namespace dino {

// The data streams that share one seed: the training set and the DINO validation set draw their crops and
// target noise from disjoint Generator keys.
enum class Stream : std::uint64_t { train = 0, valid = 1 };

// The epoch slot of a data Generator key: draws of epoch `epoch` of a stream (epochs stay below 2^40).
inline std::uint64_t stream_epoch(Stream s, std::int64_t epoch) {
  return ((2 * static_cast<std::uint64_t>(s)) << 40) + static_cast<std::uint64_t>(epoch);
}
// The epoch slot of draws that stay fixed for a whole run (label noise, fixed logit noise).
inline std::uint64_t stream_fixed(Stream s) { return (2 * static_cast<std::uint64_t>(s) + 1) << 40; }

// 0, 1, ..., n - 1: every sample of a set of n, in dataset order.
inline std::vector<std::int64_t> all_indices(std::int64_t n) {
  DINO_CHECK(n >= 0, "all_indices: negative size ", n);
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = i;
  return out;
}

// Per-class quotas of a stratified subset of n_samples (spec §2.6 steps 2-3 without the testbed's off-by-one
// counts): classes with fewer samples than the fair share give all they have (water-filling, smallest class
// first); the others share the rest evenly, and its remainder goes one each to the smallest labels among them.
// counts: label -> number of samples (only labels that occur). Returns label -> quota.
inline std::map<std::int64_t, std::int64_t> stratified_quotas(const std::map<std::int64_t, std::int64_t>& counts,
                                                               std::int64_t n_samples) {
  std::int64_t total = 0;
  for (const auto& kv : counts) total += kv.second;
  DINO_CHECK(n_samples >= 0 && n_samples <= total, "--n_samples ", n_samples, " is outside [0, ", total,
             "], the size of the training set");
  std::map<std::int64_t, std::int64_t> quota;
  // Remaining classes, by (count, label): the front is the smallest class.
  std::vector<std::pair<std::int64_t, std::int64_t>> left;
  for (const auto& kv : counts) left.emplace_back(kv.second, kv.first);
  std::sort(left.begin(), left.end());
  std::int64_t remaining = n_samples;
  std::size_t first = 0;
  while (first < left.size() &&
         left[first].first * static_cast<std::int64_t>(left.size() - first) <= remaining) {
    quota[left[first].second] = left[first].first;
    remaining -= left[first].first;
    ++first;
  }
  if (first < left.size()) {
    std::vector<std::int64_t> labels;
    for (std::size_t i = first; i < left.size(); ++i) labels.push_back(left[i].second);
    std::sort(labels.begin(), labels.end());
    const auto n_left = static_cast<std::int64_t>(labels.size());
    for (std::int64_t i = 0; i < n_left; ++i)
      quota[labels[static_cast<std::size_t>(i)]] = remaining / n_left + (i < remaining % n_left ? 1 : 0);
  }
  return quota;
}

// The dataset indices of a stratified subset of n_samples (spec §2.6 step 4): samples are taken in dataset
// order while their class's quota lasts. Deterministic and independent of every seed. labels: [N].
inline std::vector<std::int64_t> stratified_subset(const std::vector<std::int64_t>& labels, std::int64_t n_samples) {
  DINO_CHECK(n_samples > 0, "--n_samples must be positive, got ", n_samples);
  DINO_CHECK(n_samples <= static_cast<std::int64_t>(labels.size()), "--n_samples ", n_samples,
             " is larger than the training set (", labels.size(), " samples)");
  std::map<std::int64_t, std::int64_t> counts;
  for (const std::int64_t y : labels) ++counts[y];
  std::map<std::int64_t, std::int64_t> quota = stratified_quotas(counts, n_samples);
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(n_samples));
  for (std::size_t i = 0; i < labels.size() && static_cast<std::int64_t>(out.size()) < n_samples; ++i) {
    std::int64_t& q = quota[labels[i]];
    if (q > 0) {
      --q;
      out.push_back(static_cast<std::int64_t>(i));
    }
  }
  return out;
}

// The order in which one epoch visits a set of dataset indices.
// random: torch's RandomSampler(num_samples=samples_per_epoch, replacement=False): a permutation of the
//   indices drawn from Generator(seed, purpose, epoch); more samples than indices concatenate fresh
//   permutations (drawn in turn from the same generator), fewer take the first samples_per_epoch.
// sequential: the indices in their order, once per epoch (validation, probe valid sets).
class Sampler {
 public:
  Sampler() = default;  // no samples
  static Sampler sequential(std::vector<std::int64_t> indices) {
    Sampler s;
    s.samples_ = static_cast<std::int64_t>(indices.size());
    s.indices_ = std::move(indices);
    return s;
  }
  // samples_per_epoch <= 0: the number of indices.
  static Sampler random(std::vector<std::int64_t> indices, std::int64_t samples_per_epoch, std::uint64_t seed,
                        std::uint64_t purpose = purpose::sampler) {
    DINO_CHECK(!indices.empty(), "a random sampler over no samples");
    Sampler s;
    s.random_ = true;
    s.samples_ = samples_per_epoch > 0 ? samples_per_epoch : static_cast<std::int64_t>(indices.size());
    s.indices_ = std::move(indices);
    s.seed_ = seed;
    s.purpose_ = purpose;
    return s;
  }

  bool is_random() const { return random_; }
  // The dataset indices the sampler draws from (the (sub)set).
  const std::vector<std::int64_t>& indices() const { return indices_; }
  std::int64_t samples_per_epoch() const { return samples_; }
  // Batches of batch_size per epoch, the last one possibly smaller (drop_last=False): ceil(samples / bs).
  std::int64_t batches(std::int64_t batch_size) const {
    DINO_CHECK(batch_size > 0, "batch size must be positive, got ", batch_size);
    return (samples_ + batch_size - 1) / batch_size;
  }

  // The dataset indices of epoch `epoch`, in visiting order: samples_per_epoch() values (overwrites out).
  void epoch_order(std::int64_t epoch, std::vector<std::int64_t>& out) const {
    out.resize(static_cast<std::size_t>(samples_));
    if (!random_) {
      std::copy(indices_.begin(), indices_.end(), out.begin());
      return;
    }
    Generator g(seed_, purpose_, static_cast<std::uint64_t>(epoch));
    const std::size_t n = indices_.size();
    std::vector<std::int64_t> perm(n);
    for (std::size_t done = 0; done < out.size(); done += n) {
      for (std::size_t i = 0; i < n; ++i) perm[i] = static_cast<std::int64_t>(i);
      // Fisher-Yates.
      for (std::size_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[g.below(i + 1)]);
      const std::size_t take = std::min(n, out.size() - done);
      for (std::size_t i = 0; i < take; ++i) out[done + i] = indices_[static_cast<std::size_t>(perm[i])];
    }
  }
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const {
    std::vector<std::int64_t> out;
    epoch_order(epoch, out);
    return out;
  }

 private:
  std::vector<std::int64_t> indices_;
  std::int64_t samples_ = 0;
  bool random_ = false;
  std::uint64_t seed_ = 0, purpose_ = 0;
};

}  // namespace dino

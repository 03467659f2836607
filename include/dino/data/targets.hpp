// The targets of supervised training (spec §2.7, A4): the dataset's labels, labels with noise
// (the testbed's LabelNoiseWrapper), Gaussian logits (LogitNoiseWrapper) and the flattened first crop
// (InputsAsTargetsWrapper). Draws are keyed by (seed, target_noise, epoch slot, sample), so they depend on
// neither the thread count nor the order in which the loader's workers ask for them.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/random.hpp"
#include "dino/data/sampler.hpp"

namespace dino {

struct TargetOptions {
  std::int64_t n_classes = 0;       // label range of the noise; width of the noise logits
  std::int64_t dataset_classes = 0; // the dataset's classes (label noise requires n_classes == this)
  double label_noise_ratio = 0;     // > 0: label noise
  double logit_noise_temp = 0;      // > 0: Gaussian logits z / T
  bool resample = false;            // fresh noise at every access instead of once per sample
  std::int64_t inputs_numel = 0;    // > 0: inputs as logits, the values of the first crop (3 * S0^2)
  std::uint64_t seed = 0;
  Stream stream = Stream::train;
};

class Targets {
 public:
  Targets() = default;  // plain labels, no noise
  // labels: the dataset's labels [N]; subset: the dataset indices the fixed label noise is spread over.
  Targets(const TargetOptions& o, const std::vector<std::int64_t>& labels, const std::vector<std::int64_t>& subset)
      : o_(o), labels_(&labels) {
    const bool label_noise = o.label_noise_ratio > 0, logit_noise = o.logit_noise_temp > 0;
    DINO_CHECK(o.label_noise_ratio >= 0 && o.label_noise_ratio <= 1, "--label_noise_ratio must lie in [0, 1], got ",
               o.label_noise_ratio);
    DINO_CHECK(o.logit_noise_temp >= 0, "--logit_noise_temp must be >= 0, got ", o.logit_noise_temp);
    DINO_CHECK(!(label_noise && logit_noise), "--label_noise_ratio and --logit_noise_temp cannot be combined");
    DINO_CHECK(o.inputs_numel == 0 || !(label_noise || logit_noise),
               "--inputs_as_logits cannot be combined with label or logit noise");
    DINO_CHECK(!label_noise || o.n_classes == o.dataset_classes, "--label_noise_ratio needs --n_classes equal to the ",
               "dataset's ", o.dataset_classes, " classes, got ", o.n_classes);
    DINO_CHECK(!(label_noise || logit_noise) || o.n_classes > 0, "target noise needs a positive --n_classes, got ",
               o.n_classes);
    if (label_noise && !o.resample) {
      // round(N * ratio) samples of the subset (Python's round: ties to even), chosen by a seeded
      // permutation, get a uniform label (which may equal the true one).
      noisy_ = labels;
      const std::size_t n = subset.size();
      const auto k = static_cast<std::size_t>(std::nearbyint(static_cast<double>(n) * o.label_noise_ratio));
      Generator g(o.seed, purpose::target_noise, stream_fixed(o.stream));
      std::vector<std::size_t> perm(n);
      for (std::size_t i = 0; i < n; ++i) perm[i] = i;
      for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[g.below(i)]);
      for (std::size_t i = 0; i < k; ++i) {
        const std::int64_t idx = subset[perm[i]];
        DINO_CHECK(idx >= 0 && static_cast<std::size_t>(idx) < labels.size(), "label noise: sample index ", idx,
                   " is outside the dataset of ", labels.size());
        noisy_[static_cast<std::size_t>(idx)] = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(o.n_classes)));
      }
    }
  }

  const TargetOptions& options() const { return o_; }
  // Whether the targets are logits [B, logit_dim()] (logit noise, inputs as logits) rather than labels [B].
  bool has_logits() const { return o_.logit_noise_temp > 0 || o_.inputs_numel > 0; }
  bool inputs_as_logits() const { return o_.inputs_numel > 0; }
  std::int64_t logit_dim() const {
    return o_.inputs_numel > 0 ? o_.inputs_numel : o_.logit_noise_temp > 0 ? o_.n_classes : 0;
  }

  // The label of dataset sample `index`, visited at `position` of epoch `epoch`: the dataset's label with label
  // noise applied (fixed per sample, or with resample: replaced with probability ratio at every access).
  std::int64_t label(std::int64_t index, std::int64_t epoch, std::int64_t position) const {
    DINO_CHECK(labels_ && index >= 0 && static_cast<std::size_t>(index) < labels_->size(), "targets: sample index ",
               index, " is outside the dataset");
    if (o_.label_noise_ratio > 0 && o_.resample) {
      Generator g(o_.seed, purpose::target_noise, stream_epoch(o_.stream, epoch), static_cast<std::uint64_t>(position));
      if (g.uniform() < o_.label_noise_ratio) return static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(o_.n_classes)));
    }
    const auto& src = noisy_.empty() ? *labels_ : noisy_;
    return src[static_cast<std::size_t>(index)];
  }

  // Logit-noise targets of dataset sample `index`, visited at `position` of epoch `epoch`: out[n_classes]
  // (overwritten) = z / T with z ~ N(0, I) / sqrt(n_classes), fixed per sample or, with resample, fresh at every
  // access (the same distribution; the testbed's resample branch drops the 1/sqrt(n), which we do not copy).
  // Inputs as logits are filled by the loader from the first crop, not here.
  template <class T>
  void logits(T* out, std::int64_t index, std::int64_t epoch, std::int64_t position) const {
    DINO_CHECK(o_.logit_noise_temp > 0, "targets: logits requested without --logit_noise_temp");
    Generator g = o_.resample ? Generator(o_.seed, purpose::target_noise, stream_epoch(o_.stream, epoch),
                                          static_cast<std::uint64_t>(position))
                              : Generator(o_.seed, purpose::target_noise, stream_fixed(o_.stream),
                                          static_cast<std::uint64_t>(index));
    const double scale = 1.0 / (std::sqrt(static_cast<double>(o_.n_classes)) * o_.logit_noise_temp);
    for (std::int64_t k = 0; k < o_.n_classes; ++k) out[k] = static_cast<T>(g.normal() * scale);
  }

 private:
  TargetOptions o_;
  const std::vector<std::int64_t>* labels_ = nullptr;
  std::vector<std::int64_t> noisy_;  // [N] labels with the fixed noise applied; empty without it
};

}  // namespace dino

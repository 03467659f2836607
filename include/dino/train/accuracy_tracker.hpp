// The testbed's AccuracyTracker (dinopl/tracking.py, spec §11): predictions are the argmax of the crop-averaged
// softmax of the student logits [C, B, K]; targets are labels, the argmax of softmax(target logits [B, K]), or in
// distillation the argmax of the crop-averaged teacher softmax; accuracy is torchmetrics' micro accuracy.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/tensor.hpp"

namespace dino {

// x [crops, rows, classes] on the host, C order: logits, or log-probabilities (log_softmax rows) with log_probs.
// pred[r] (overwritten, resized to rows) = argmax_k mean_c softmax(x[c, r, :])_k, with torch.argmax's rules:
// the first maximum wins, and a NaN (from a non-finite logit) counts as the maximum. Computed in double, each
// row serially (thread-count independent), one exp per value; each thread holds two buffers of `classes` doubles.
template <class T>
void crop_averaged_argmax(const T* x, Index crops, Index rows, Index classes, bool log_probs,
                          std::vector<std::int64_t>& pred) {
  DINO_CHECK(crops >= 1 && rows >= 0 && classes >= 1, "accuracy: cannot take the argmax of ", crops, " crops of ",
             rows, " rows of ", classes, " classes");
  pred.resize(static_cast<std::size_t>(rows));
  const double n_crops = static_cast<double>(crops);
  const std::size_t k = static_cast<std::size_t>(classes);
#ifdef _OPENMP
#pragma omp parallel
#endif
  {
    std::vector<double> mean(k), e(k);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (Index b = 0; b < rows; ++b) {
      std::fill(mean.begin(), mean.end(), 0.0);
      for (Index c = 0; c < crops; ++c) {
        const T* xr = x + (c * rows + b) * classes;
        if (log_probs) {
          for (std::size_t j = 0; j < k; ++j) mean[j] += std::exp(static_cast<double>(xr[j]));
          continue;
        }
        // Softmax as torch computes it, exp(x - max) / sum: no overflow; a NaN or +inf logit makes the row NaN.
        double mx = static_cast<double>(xr[0]);
        for (std::size_t j = 1; j < k; ++j) mx = std::max(mx, static_cast<double>(xr[j]));
        double sum = 0;
        for (std::size_t j = 0; j < k; ++j) {
          e[j] = std::exp(static_cast<double>(xr[j]) - mx);
          sum += e[j];
        }
        for (std::size_t j = 0; j < k; ++j) mean[j] += e[j] / sum;
      }
      std::size_t best = 0;
      double best_p = mean[0] / n_crops;
      for (std::size_t j = 1; j < k && !std::isnan(best_p); ++j) {
        const double p = mean[j] / n_crops;
        if (std::isnan(p) || p > best_p) {
          best = j;
          best_p = p;
        }
      }
      pred[static_cast<std::size_t>(b)] = static_cast<std::int64_t>(best);
    }
  }
}

// The same over a backend tensor x [C, B, K] (or [B, K]: one crop), reusing its buffers from call to call. The
// CPU backend's tensors are read in place; other backends copy x to the host once per call.
template <class T, class B>
class CropAveragedArgmax {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  const std::vector<std::int64_t>& operator()(Ctx<B>&, const Tensor<T, B>& x, bool log_probs = false) {
    DINO_CHECK(x.rank() == 3 || x.rank() == 2, "accuracy: expected logits [C, B, K] or [B, K], got ",
               x.shape().str());
    const Index crops = x.rank() == 3 ? x.size(0) : 1;
    const T* data = x.data();
    if constexpr (!std::is_same_v<B, Cpu>) {
      staging_.resize(static_cast<std::size_t>(x.numel()));
      B::copy_to_host(staging_.data(), x.data(), x.numel());
      data = staging_.data();
    }
    crop_averaged_argmax(data, crops, x.size(-2), x.size(-1), log_probs, pred_);
    return pred_;
  }

 private:
  std::vector<T> staging_;
  std::vector<std::int64_t> pred_;
};

// One-off form of CropAveragedArgmax (allocates its buffers).
template <class T, class B>
std::vector<std::int64_t> crop_averaged_argmax(Ctx<B>& ctx, const Tensor<T, B>& x, bool log_probs = false) {
  CropAveragedArgmax<T, B> f;
  return f(ctx, x, log_probs);
}

// torchmetrics' multiclass micro accuracy: correct / total over every add() since the last reset() (the
// validation epoch's valid/s_acc); add() also returns the batch's own accuracy (train/s_acc of one step).
struct AccuracyCounter {
  std::int64_t correct = 0;
  std::int64_t total = 0;
  std::int64_t num_classes = 0;  // > 0: predictions and targets must lie in [0, num_classes)

  double add(const std::vector<std::int64_t>& pred, const std::vector<std::int64_t>& target) {
    DINO_CHECK(pred.size() == target.size(), "accuracy: ", pred.size(), " predictions for ", target.size(),
               " targets");
    std::int64_t hits = 0;
    for (std::size_t i = 0; i < pred.size(); ++i) {
      DINO_CHECK(num_classes <= 0 || (pred[i] >= 0 && pred[i] < num_classes && target[i] >= 0 &&
                                      target[i] < num_classes),
                 "accuracy: sample ", i, " has prediction ", pred[i], " and target ", target[i], " outside [0, ",
                 num_classes, ")");
      hits += pred[i] == target[i] ? 1 : 0;
    }
    correct += hits;
    total += static_cast<std::int64_t>(pred.size());
    return ratio(hits, static_cast<std::int64_t>(pred.size()));
  }
  // 0 before any sample, as torchmetrics' safe division.
  double value() const { return ratio(correct, total); }
  void reset() {
    correct = 0;
    total = 0;
  }

 private:
  static double ratio(std::int64_t a, std::int64_t b) {
    return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
  }
};

}  // namespace dino

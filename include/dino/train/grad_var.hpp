// GradVarTracker (--track_gradvar, the testbed's GradVarTracker, spec §11 and §9.3 steps 6 and 10): the spread
// of the per-sample student gradients around the batch gradient, params/{''|enc/|head/}var(grad)
// = sum_i ||g_batch - g_i||^2 / (B - 1), with g_i from one eval-mode forward/backward per sample.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "dino/core/params.hpp"
#include "dino/train/step.hpp"

namespace dino {

template <class T, class B>
class GradVarTracker {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;

  // The metric names, in the order of the groups: all parameters, "enc.*", "head.*".
  static const std::vector<std::string>& metric_names() {
    static const std::vector<std::string> names = {"params/var(grad)", "params/enc/var(grad)", "params/head/var(grad)"};
    return names;
  }

  // g_batch: a copy of the student's gradients as they are now. Meant for DinoTrainer::set_after_backward, so it
  // sees the raw gradient after a micro-batch's backward (before the freeze of the last layer and clipping);
  // with gradient accumulation that is the sum so far of the micro-batches' gradients of loss / batchaccum,
  // as the testbed's on_after_backward sees it.
  void capture_batch_grad(Ctx<B>& /*ctx*/, const NamedStore<T, B>& student_params) {
    DINO_CHECK(student_params.finalized() && student_params.grads().numel() == student_params.numel(),
               "GradVarTracker: the student's parameter store has no gradients");
    batch_.copy_from(student_params.grads());
    captured_ = true;
  }

  // After DinoTrainer::step returned (the optimizer step and the EMA done): one sample_gradient per sample of
  // the micro-batch (crops: the step's C tensors [B, 3, S, S]; targets: the step's, sliced per sample) and the
  // three metrics, NaN when B = 1. The student's gradient store is restored afterwards, so tracking never
  // changes training (also mid-accumulation). Needs a capture_batch_grad since the last call.
  std::map<std::string, double> after_step(Ctx<B>& ctx, DinoTrainer<T, B>& trainer, ModelState<T, B>& student,
                                           const std::vector<const TensorT*>& crops,
                                           const StepTargets<T, B>& targets) {
    DINO_CHECK(captured_, "GradVarTracker: no batch gradient captured since the last step (call capture_batch_grad "
               "after the backward, e.g. from DinoTrainer::set_after_backward)");
    captured_ = false;
    NamedStore<T, B>& params = student.params;
    DINO_CHECK(batch_.numel() == params.numel() && params.grads().numel() == params.numel(),
               "GradVarTracker: the captured gradient has ", batch_.numel(), " values, the student ", params.numel());
    DINO_CHECK(!crops.empty() && crops[0]->rank() == 4, "GradVarTracker: expected crops [B, 3, S, S]");
    const Index b = crops[0]->size(0);
    for (std::size_t c = 0; c < crops.size(); ++c)
      DINO_CHECK(crops[c]->rank() == 4 && crops[c]->size(0) == b, "GradVarTracker: crop ", c, " has shape ",
                 crops[c]->shape().str(), "; expected [", b, ", 3, S, S] like crop 0");
    DINO_CHECK(targets.labels.empty() || static_cast<Index>(targets.labels.size()) == b, "GradVarTracker: ",
               targets.labels.size(), " labels for a batch of ", b);
    DINO_CHECK(!targets.logits || (targets.logits->rank() == 2 && targets.logits->size(0) == b),
               "GradVarTracker: target logits must be [", b, ", n], got ", targets.logits->shape().str());

    std::map<std::string, double> out;
    const auto& names = metric_names();
    if (b < 2) {
      // One sample has no spread to estimate (the unbiased estimate divides by B - 1 = 0).
      for (const auto& n : names) out[n] = std::numeric_limits<double>::quiet_NaN();
      return out;
    }
    prepare_groups(params);
    saved_.copy_from(params.grads());
    slices_.resize(crops.size());
    std::vector<const TensorT*> sample(crops.size());
    double sums[3] = {0, 0, 0};
    for (Index i = 0; i < b; ++i) {
      for (std::size_t c = 0; c < crops.size(); ++c) {
        const Shape& s = crops[c]->shape();
        const Index per = s.numel() / b;
        slices_[c].resize({1, s[1], s[2], s[3]});
        B::copy(slices_[c].data(), crops[c]->data() + i * per, per);
        sample[c] = &slices_[c];
      }
      sample_targets_.labels.clear();
      if (!targets.labels.empty()) sample_targets_.labels.push_back(targets.labels[static_cast<std::size_t>(i)]);
      sample_targets_.logits = nullptr;
      if (targets.logits) {
        const Index n = targets.logits->size(1);
        logits_row_.resize({1, n});
        B::copy(logits_row_.data(), targets.logits->data() + i * n, n);
        sample_targets_.logits = &logits_row_;
      }
      trainer.sample_gradient(ctx, sample, sample_targets_);
      // The difference in T as the testbed's (g_batch - g_i), its squares summed in double per parameter.
      diff_.copy_from(batch_);
      B::axpy(ctx, T(-1), params.grads().data(), diff_.data(), diff_.numel());
      B::sum_squares_f64_segments(ctx, diff_.data(), offsets_.data(), counts_.data(), params.count(), squares_.data());
      for (std::size_t id = 0; id < squares_.size(); ++id) {
        sums[0] += squares_[id];
        if (group_[id] > 0) sums[group_[id]] += squares_[id];
      }
    }
    params.grads().copy_from(saved_);
    const double n = static_cast<double>(b - 1);
    for (std::size_t g = 0; g < names.size(); ++g) out[names[g]] = sums[g] / n;
    return out;
  }

 private:
  // Per parameter: its place in the flat store and its group (1 = "enc.*", 2 = "head.*", 0 = neither).
  void prepare_groups(const NamedStore<T, B>& params) {
    const std::size_t n = static_cast<std::size_t>(params.count());
    offsets_.resize(n);
    counts_.resize(n);
    group_.resize(n);
    squares_.resize(n);
    for (std::size_t id = 0; id < n; ++id) {
      const Entry& e = params.entry(static_cast<Index>(id));
      offsets_[id] = e.offset;
      counts_[id] = e.shape.numel();
      group_[id] = e.name.rfind("enc.", 0) == 0 ? 1 : e.name.rfind("head.", 0) == 0 ? 2 : 0;
    }
  }

  TensorT batch_, saved_, diff_, logits_row_;
  std::vector<TensorT> slices_;
  StepTargets<T, B> sample_targets_;
  std::vector<Index> offsets_, counts_;
  std::vector<int> group_;
  std::vector<double> squares_;
  bool captured_ = false;
};

}  // namespace dino

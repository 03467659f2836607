// SGD, Adam and AdamW over a NamedStore's flat values and gradients, as torch.optim.SGD / Adam / AdamW
// (foreach=False) of PyTorch 1.13/2.0 with the testbed's two parameter groups (spec §7.1, §7.2, A4): one
// backend call per parameter tensor, per-tensor step counts, inactive (grad None) tensors skipped entirely.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/params.hpp"
#include "dino/core/tensor.hpp"
#include "dino/optim/param_groups.hpp"
#include "dino/optim/update_rules.hpp"

namespace dino {

enum class OptimizerKind { sgd, adam, adamw };

inline const char* optimizer_name(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::sgd: return "sgd";
    case OptimizerKind::adam: return "adam";
    case OptimizerKind::adamw: return "adamw";
  }
  return "?";
}

// The CLI's --opt values: "sgd", "adam", "adamw".
inline OptimizerKind parse_optimizer_kind(const std::string& s) {
  for (OptimizerKind k : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw})
    if (s == optimizer_name(k)) return k;
  fail("unknown optimizer '", s, "': expected sgd, adam or adamw");
}

// Constructor arguments fixed for the whole run (torch's defaults; the testbed passes none of them).
struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::adamw;
  double momentum = 0.9;  // SGD only; 0 keeps no momentum buffer
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam and AdamW
};

// One group's hyper-parameters for one step (the schedules' values; the caller rounds them to float32 for a
// float run if it wants the testbed's float32 schedule tensors).
struct GroupHyper {
  double lr = 0;
  double weight_decay = 0;
};

template <class T, class B>
class Optimizer {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using Hyper = GroupHyper;

  // Keeps a reference to params (finalized, with gradients), which must outlive the optimizer. State starts
  // empty: zero moments and step count 0 for every tensor (torch creates it lazily, with the same values).
  Optimizer(NamedStore<T, B>& params, const OptimizerOptions& options = {})
      : params_(params), options_(options), groups_(make_param_groups(params)) {
    DINO_CHECK(params.finalized(), "the optimizer needs a finalized parameter store");
    DINO_CHECK(params.grads().numel() == params.numel(), "the optimizer needs a parameter store with gradients");
    if (options.kind == OptimizerKind::sgd) {
      DINO_CHECK(options.momentum >= 0, "invalid SGD momentum ", options.momentum, ": must be >= 0");
    } else {
      DINO_CHECK(options.beta1 >= 0 && options.beta1 < 1, "invalid beta1 ", options.beta1, ": must be in [0, 1)");
      DINO_CHECK(options.beta2 >= 0 && options.beta2 < 1, "invalid beta2 ", options.beta2, ": must be in [0, 1)");
      DINO_CHECK(options.eps >= 0, "invalid eps ", options.eps, ": must be >= 0");
    }
    const Shape flat{params.numel()};
    if (uses_first()) first_.resize(flat);
    if (uses_second()) second_.resize(flat);
    reset();
  }

  // One optimizer step over every active tensor: active[id] != 0 marks a tensor with a gradient (empty = all);
  // an inactive tensor (torch's grad None, the frozen last layer) gets no decay, no moment update and no step
  // count. Group "weights" uses `weights`, group "biases" uses `biases` (A4: the caller passes weight decay
  // 0 there). Updates the values and the state in place; gradients are read only.
  void step(Ctx<B>& ctx, const Hyper& weights, const Hyper& biases, const std::vector<char>& active = {}) {
    DINO_CHECK(active.empty() || static_cast<Index>(active.size()) == params_.count(), "optimizer step: ",
               active.size(), " active flags for ", params_.count(), " parameters");
    check_hyper(weights, ParamGroup::weights);
    check_hyper(biases, ParamGroup::biases);
    T* values = params_.values().data();
    const T* grads = params_.grads().data();
    for (Index id = 0; id < params_.count(); ++id) {
      if (!active.empty() && !active[static_cast<std::size_t>(id)]) continue;
      const Entry& e = params_.entry(id);
      const Hyper& h = groups_.group(id) == ParamGroup::weights ? weights : biases;
      const std::int64_t step = ++steps_[static_cast<std::size_t>(id)];
      T* p = values + e.offset;
      const T* g = grads + e.offset;
      const Index n = e.shape.numel();
      switch (options_.kind) {
        case OptimizerKind::adamw:
          B::adamw_update(ctx, p, g, first_.data() + e.offset, second_.data() + e.offset, n,
                          optim::adam_factors<T>(h.lr, h.weight_decay, options_.beta1, options_.beta2, options_.eps, step));
          break;
        case OptimizerKind::adam:
          B::adam_update(ctx, p, g, first_.data() + e.offset, second_.data() + e.offset, n,
                         optim::adam_factors<T>(h.lr, h.weight_decay, options_.beta1, options_.beta2, options_.eps, step));
          break;
        case OptimizerKind::sgd:
          B::sgd_update(ctx, p, g, uses_first() ? first_.data() + e.offset : nullptr, step == 1, n,
                        optim::sgd_factors<T>(h.lr, h.weight_decay, options_.momentum));
          break;
      }
    }
  }

  const OptimizerOptions& options() const { return options_; }
  const ParamGroups& groups() const { return groups_; }
  NamedStore<T, B>& params() { return params_; }

  // Names of the per-element state tensors, as the keys of torch's optimizer state: "exp_avg", "exp_avg_sq"
  // (Adam, AdamW), "momentum_buffer" (SGD with momentum), none for SGD without momentum. Besides these every
  // tensor has a step count (torch's "step" for Adam and AdamW; SGD keeps it only to know its first step).
  std::vector<std::string> state_names() const {
    if (options_.kind != OptimizerKind::sgd) return {"exp_avg", "exp_avg_sq"};
    if (uses_first()) return {"momentum_buffer"};
    return {};
  }
  // The state tensor of that name, flat [numel of the store] with the layout of params.values() (entry id
  // at params.entry(id).offset); writable, to restore a checkpoint. A tensor whose step count is 0 has no
  // torch state yet: its slices hold zeros (set_step_count(id, 0) clears them), as torch's lazily created state.
  Tensor<T, B>& state(const std::string& name) { return const_cast<Tensor<T, B>&>(std::as_const(*this).state(name)); }
  const Tensor<T, B>& state(const std::string& name) const {
    if (options_.kind == OptimizerKind::sgd) {
      if (name == "momentum_buffer" && uses_first()) return first_;
    } else {
      if (name == "exp_avg") return first_;
      if (name == "exp_avg_sq") return second_;
    }
    fail("the ", optimizer_name(options_.kind), " optimizer has no state tensor '", name, "'");
  }

  // Steps taken by each tensor (0: never active, no torch state yet). Restoring a checkpoint: write the state
  // tensors first, then the step counts (a count of 0 zeroes that tensor's state slices).
  const std::vector<std::int64_t>& step_counts() const { return steps_; }
  std::int64_t step_count(Index id) const { return steps_.at(checked(id)); }
  void set_step_count(Index id, std::int64_t n) {
    const std::size_t i = checked(id);
    DINO_CHECK(n >= 0, "invalid step count ", n, " for '", params_.entry(id).name, "'");
    steps_[i] = n;
    if (n > 0) return;
    const Entry& e = params_.entry(id);
    if (uses_first()) B::fill(first_.data() + e.offset, e.shape.numel(), T(0));
    if (uses_second()) B::fill(second_.data() + e.offset, e.shape.numel(), T(0));
  }

  // Back to the state of a fresh optimizer.
  void reset() {
    steps_.assign(static_cast<std::size_t>(params_.count()), 0);
    if (uses_first()) first_.fill(T(0));
    if (uses_second()) second_.fill(T(0));
  }

 private:
  bool uses_first() const { return options_.kind != OptimizerKind::sgd || options_.momentum != 0; }
  bool uses_second() const { return options_.kind != OptimizerKind::sgd; }
  std::size_t checked(Index id) const {
    DINO_CHECK(id >= 0 && id < params_.count(), "no parameter with id ", id);
    return static_cast<std::size_t>(id);
  }
  static void check_hyper(const Hyper& h, ParamGroup g) {
    DINO_CHECK(h.lr >= 0, "invalid learning rate ", h.lr, " for the ", param_group_name(g), " group: must be >= 0");
    DINO_CHECK(h.weight_decay >= 0, "invalid weight decay ", h.weight_decay, " for the ", param_group_name(g),
               " group: must be >= 0");
  }

  NamedStore<T, B>& params_;
  OptimizerOptions options_;
  ParamGroups groups_;
  std::vector<std::int64_t> steps_;
  Tensor<T, B> first_;   // exp_avg, or SGD's momentum_buffer
  Tensor<T, B> second_;  // exp_avg_sq
};

}  // namespace dino

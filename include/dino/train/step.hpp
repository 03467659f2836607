// The DINO training step (the testbed's DINO.training_step with its callbacks, spec §9.3, §6.4, §7, A5): the
// scheduled values of the step, the teacher and student forwards, the multicrop loss, backward, the freeze of
// the last layer, global-norm clipping, the optimizer step with the linearly scaled learning rate, and the
// teacher update. Gradient accumulation (§7.6): each call is one micro-batch; the optimizer steps after every
// batchaccum-th one, the EMA after every one.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dino/data/multicrop.hpp"
#include "dino/loss/multicrop.hpp"
#include "dino/optim/clip.hpp"
#include "dino/optim/optimizer.hpp"
#include "dino/teacher/update.hpp"
#include "dino/train/config.hpp"
#include "dino/train/model.hpp"

namespace dino {

// The values of every schedule at one optimizer step (spec §8.5), rounded to the run's scalar type as the
// testbed's 0-dim schedule tensors are.
struct ScheduledValues {
  double t_mom = 0, t_cmom = 0, s_cmom = 0, t_temp = 1, s_temp = 1, lr = 0, wd = 0;
};

// The targets of a supervised step: labels [B] or target logits [B, n] (spec §2.7, §6.2); none for distillation.
template <class T, class B>
struct StepTargets {
  std::vector<std::int64_t> labels;
  const Tensor<T, B>* logits = nullptr;
};

struct StepResult {
  LossValues loss;           // the micro-batch's values, before the division by batchaccum
  ScheduledValues sched;     // as used at this step
  double lr_used = 0;        // the optimizer's learning rate: lr * bs_train * batchaccum / 256 (A5)
  bool optimizer_step = false;
  double grad_norm = NAN;    // global norm before clipping (NaN when clipping is off or no step was taken)
  Index images = 0;          // images in the micro-batch
};

template <class T, class B>
class DinoTrainer {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;

  // student and teacher are initialised already; steps_per_epoch counts optimizer steps (spec §8.2).
  DinoTrainer(const Config& c, DinoModel<T, B>& student, DinoModel<T, B>& teacher, std::int64_t batchaccum,
              std::int64_t steps_per_epoch)
      : c_(c),
        student_(student),
        teacher_(teacher),
        mc_(multicrop_preset(c.mc)),
        t_idx_(mc_.teacher_idx()),
        s_idx_(mc_.student_idx()),
        batchaccum_(batchaccum),
        spe_(steps_per_epoch),
        optimizer_(student.state().params, optimizer_options(c)),
        loss_(loss_options(c, mc_)),
        active_(static_cast<std::size_t>(student.state().params.count()), 1) {
    DINO_CHECK(batchaccum >= 1, "batchaccum must be >= 1 once resolved, got ", batchaccum);
    DINO_CHECK(steps_per_epoch >= 1, "steps per epoch must be >= 1, got ", steps_per_epoch);
    DINO_CHECK(c.t_bn_mode != "from_student" || c.t_eval, "--t_bn_mode from_student requires --t_eval true");
    t_mom_ = c.t_mom.schedule();
    t_cmom_ = c.t_cmom.schedule();
    s_cmom_ = c.s_cmom.schedule();
    t_temp_ = c.t_temp.schedule();
    s_temp_ = c.s_temp.schedule();
    lr_ = c.opt_lr.schedule();
    wd_ = c.opt_wd.schedule();
    // The schedules span max(n_steps, n_epochs * spe) optimizer steps (spec §8.2).
    for (Schedule* s : {&t_mom_, &t_cmom_, &s_cmom_, &t_temp_, &s_temp_, &lr_, &wd_}) s->prep(c.n_steps, c.n_epochs, spe_);
    student_.head().cmom = T(NAN);
    teacher_.head().cmom = T(NAN);
    frozen_ = student_.head().last_layer_lin2_params();
  }

  // Where a resumed run continues: after `micro_steps` micro-batches (a whole number of optimizer steps).
  void restore_position(std::int64_t micro_steps) {
    DINO_CHECK(micro_steps >= 0 && micro_steps % batchaccum_ == 0, "cannot resume after ", micro_steps,
               " micro-batches: not a whole number of optimizer steps (batchaccum ", batchaccum_, ")");
    micro_step_ = micro_steps;
    global_step_ = micro_steps / batchaccum_;
  }
  std::int64_t global_step() const { return global_step_; }
  std::int64_t micro_step() const { return micro_step_; }
  std::int64_t epoch() const { return global_step_ / spe_; }
  std::int64_t steps_per_epoch() const { return spe_; }
  const MultiCrop& multicrop() const { return mc_; }
  Optimizer<T, B>& optimizer() { return optimizer_; }
  // The optimizer steps every schedule has a value for (a CatSched with an int split can be longer than the
  // run, spec §8.3).
  std::int64_t schedule_length() const {
    std::int64_t n = lr_.size();
    for (const Schedule* s : {&t_mom_, &t_cmom_, &s_cmom_, &t_temp_, &s_temp_, &wd_}) n = std::min(n, s->size());
    return n;
  }

  ScheduledValues scheduled(std::int64_t step) const {
    const auto r = [](double v) { return static_cast<double>(static_cast<T>(v)); };
    return {r(t_mom_.value(step)), r(t_cmom_.value(step)), r(s_cmom_.value(step)), r(t_temp_.value(step)),
            r(s_temp_.value(step)), r(lr_.value(step)), r(wd_.value(step))};
  }

  // One micro-batch: crops are the --mc preset's C tensors [B, 3, S_i, S_i]; targets for s_mode supervised.
  StepResult step(Ctx<B>& ctx, const std::vector<const TensorT*>& crops, const StepTargets<T, B>& targets = {}) {
    DINO_CHECK(crops.size() == mc_.crops.size(), "a batch of ", crops.size(), " crops for --mc ", c_.mc, ", which has ",
               mc_.crops.size());
    StepResult r;
    r.images = crops[0]->shape()[0];
    r.sched = scheduled(global_step_);
    const ScheduledValues& v = r.sched;
    apply_schedules(global_step_);

    student_.train(true);
    teacher_.train(!c_.t_eval);
    const bool first_micro = micro_step_ % batchaccum_ == 0;
    const bool last_micro = (micro_step_ + 1) % batchaccum_ == 0;
    if (first_micro) student_.state().params.zero_grad();

    // Teacher forward without gradients, centre updated after use (spec §9.3 steps 3-4).
    {
      NoGrad<Ctx<B>> no_grad(ctx);
      teacher_.forward(ctx, select(crops, t_idx_), true, teacher_pass_);
    }
    student_.forward(ctx, select(crops, s_idx_), true, student_pass_);

    const double scale = 1.0 / static_cast<double>(batchaccum_);
    if (c_.s_mode == "supervised") {
      DINO_CHECK(!targets.labels.empty() || targets.logits != nullptr, "s_mode supervised needs targets in every batch");
      r.loss = targets.logits ? loss_.compute(ctx, student_pass_.logits, *targets.logits, &dlogits_, scale)
                              : loss_.compute(ctx, student_pass_.logits, targets.labels, &dlogits_, scale);
    } else {
      r.loss = loss_.compute(ctx, student_pass_.logits, teacher_pass_.logits, &dlogits_, scale);
    }
    student_.backward(ctx, dlogits_, student_pass_);
    if (after_backward_) after_backward_();

    if (last_micro) {
      // The last layer is frozen during the first wn_freeze_epochs epochs: its gradients count as absent,
      // so clipping and the optimizer skip it (spec §7.5).
      std::fill(active_.begin(), active_.end(), char(1));
      if (epoch() < c_.wn_freeze_epochs)
        for (Index id : frozen_) active_[static_cast<std::size_t>(id)] = 0;
      if (c_.clip_grad > 0) r.grad_norm = clip_grad_norm(ctx, student_.state().params, c_.clip_grad, active_);
      r.lr_used = static_cast<double>(static_cast<T>(v.lr * static_cast<double>(c_.bs_train * batchaccum_) / 256.0));
      // Biases and 1-D parameters never decay (Part A4).
      optimizer_.step(ctx, {r.lr_used, v.wd}, {r.lr_used, 0.0}, active_);
      r.optimizer_step = true;
    }
    // The EMA runs after every micro-batch, with the momentum of the current optimizer step (spec §6.4).
    if (c_.t_mode == "ema")
      teacher_ema_update(ctx, teacher_.state(), student_.state(), T(v.t_mom), c_.t_bn_mode == "from_student");
    ++micro_step_;
    if (last_micro) ++global_step_;
    return r;
  }

  // Sets the heads' temperatures and centring momenta to the schedules' values at optimizer step `step`
  // (spec A6: also for the validation that precedes training, which therefore sees step 0's values).
  void apply_schedules(std::int64_t step) {
    const ScheduledValues v = scheduled(step);
    teacher_.head().cmom = T(v.t_cmom);
    student_.head().cmom = T(v.s_cmom);
    teacher_.head().temp = T(v.t_temp);
    student_.head().temp = T(v.s_temp);
  }

  // One validation batch (spec §6.3, §9.5): both networks in eval mode, no gradients, no centre updates, the
  // current temperatures. Returns the loss values; the passes hold the outputs afterwards.
  LossValues evaluate(Ctx<B>& ctx, const std::vector<const TensorT*>& crops, const StepTargets<T, B>& targets = {}) {
    DINO_CHECK(crops.size() == mc_.crops.size(), "a batch of ", crops.size(), " crops for --mc ", c_.mc, ", which has ",
               mc_.crops.size());
    NoGrad<Ctx<B>> no_grad(ctx);
    student_.train(false);
    teacher_.train(false);
    teacher_.forward(ctx, select(crops, t_idx_), false, teacher_pass_);
    student_.forward(ctx, select(crops, s_idx_), false, student_pass_);
    if (c_.s_mode == "supervised") {
      DINO_CHECK(!targets.labels.empty() || targets.logits != nullptr, "s_mode supervised needs targets in every batch");
      return targets.logits ? loss_.compute(ctx, student_pass_.logits, *targets.logits)
                            : loss_.compute(ctx, student_pass_.logits, targets.labels);
    }
    return loss_.compute(ctx, student_pass_.logits, teacher_pass_.logits);
  }

  // The gradient of the GradVarTracker's per-sample passes (spec §11, §9.3 step 10): the forward of evaluate()
  // (both networks in eval mode, no centre updates, the current temperatures), the loss of these crops with
  // gradient scale 1 (not divided by batchaccum), and the student's backward into its gradient store, which is
  // zeroed first (so overwritten: callers mid-accumulation save and restore it). Parameters, buffers (eval
  // mode leaves BatchNorm statistics alone), counters, optimizer state and the step position stay as they
  // are; the passes hold these crops' outputs afterwards and the networks stay in eval mode (step() sets
  // the modes itself).
  LossValues sample_gradient(Ctx<B>& ctx, const std::vector<const TensorT*>& crops,
                             const StepTargets<T, B>& targets = {}) {
    DINO_CHECK(crops.size() == mc_.crops.size(), "a batch of ", crops.size(), " crops for --mc ", c_.mc, ", which has ",
               mc_.crops.size());
    DINO_CHECK(ctx.grad_enabled, "sample_gradient needs gradients: it was called inside a no-grad scope");
    student_.train(false);
    teacher_.train(false);
    {
      NoGrad<Ctx<B>> no_grad(ctx);
      teacher_.forward(ctx, select(crops, t_idx_), false, teacher_pass_);
    }
    student_.forward(ctx, select(crops, s_idx_), false, student_pass_);
    LossValues v;
    if (c_.s_mode == "supervised") {
      DINO_CHECK(!targets.labels.empty() || targets.logits != nullptr, "s_mode supervised needs targets in every batch");
      v = targets.logits ? loss_.compute(ctx, student_pass_.logits, *targets.logits, &dlogits_, 1.0)
                         : loss_.compute(ctx, student_pass_.logits, targets.labels, &dlogits_, 1.0);
    } else {
      v = loss_.compute(ctx, student_pass_.logits, teacher_pass_.logits, &dlogits_, 1.0);
    }
    student_.state().params.zero_grad();
    student_.backward(ctx, dlogits_, student_pass_);
    return v;
  }

  // The end of a training epoch (spec §9.4): the prev_epoch copy when due. The caller runs it after the
  // epoch's last batch (and after a validation that is due then).
  void end_epoch(std::int64_t epoch_index) {
    if (c_.t_mode == "prev_epoch" && epoch_index % c_.t_update_every == c_.t_update_every - 1)
      teacher_copy_update(teacher_.state(), student_.state(), c_.t_bn_mode == "from_student");
  }

  // Called after every micro-batch's backward, before the last-layer freeze, clipping and the optimizer step:
  // the trackers of spec §9.3 step 6 see the raw gradients there.
  void set_after_backward(std::function<void()> fn) { after_backward_ = std::move(fn); }

  const ModelPass<T, B>& student_pass() const { return student_pass_; }
  const ModelPass<T, B>& teacher_pass() const { return teacher_pass_; }

 private:
  static OptimizerOptions optimizer_options(const Config& c) {
    OptimizerOptions o;
    o.kind = parse_optimizer_kind(c.opt);
    o.momentum = c.opt_mom;
    o.beta1 = c.opt_beta1;
    o.beta2 = c.opt_beta2;
    return o;
  }
  static LossOptions loss_options(const Config& c, const MultiCrop& mc) {
    LossOptions o;
    o.kind = parse_loss_kind(c.loss);
    o.pairing = parse_pairing(c.loss_pairing);
    for (int i : mc.teacher_idx()) o.t_idx.push_back(i);
    for (int i : mc.student_idx()) o.s_idx.push_back(i);
    return o;
  }
  static std::vector<const TensorT*> select(const std::vector<const TensorT*>& crops, const std::vector<int>& idx) {
    std::vector<const TensorT*> out;
    for (int i : idx) out.push_back(crops[static_cast<std::size_t>(i)]);
    return out;
  }

  const Config c_;
  DinoModel<T, B>& student_;
  DinoModel<T, B>& teacher_;
  MultiCrop mc_;
  std::vector<int> t_idx_, s_idx_;  // the crops each network sees
  std::int64_t batchaccum_, spe_;
  Schedule t_mom_ = Schedule::constant(0), t_cmom_ = Schedule::constant(0), s_cmom_ = Schedule::constant(0),
           t_temp_ = Schedule::constant(0), s_temp_ = Schedule::constant(0), lr_ = Schedule::constant(0),
           wd_ = Schedule::constant(0);
  Optimizer<T, B> optimizer_;
  MulticropLoss<T, B> loss_;
  std::vector<char> active_;
  std::vector<Index> frozen_;
  ModelPass<T, B> teacher_pass_, student_pass_;
  TensorT dlogits_;
  std::int64_t global_step_ = 0, micro_step_ = 0;
  std::function<void()> after_backward_;
};

}  // namespace dino

// The GradVarTracker (spec §11, --track_gradvar) and DinoTrainer::sample_gradient: the metric against the
// per-sample passes written out by hand, training untouched by the tracker, and the state the extra passes
// must leave alone.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dino/cpu.hpp>
#include <map>
#include <string>
#include <vector>

#include "../support/errors.hpp"
#include "dino/teacher/init.hpp"
#include "dino/train/grad_var.hpp"
#include "dino/train/step.hpp"

// Every member compiled for both scalar types (the tracker is not in tests/support/instantiate.hpp).
template class dino::GradVarTracker<float, dino::Cpu>;
template class dino::GradVarTracker<double, dino::Cpu>;

namespace dino {
namespace {

using TensorD = Tensor<double, Cpu>;

// A convnet with a BatchNorm block and a head with BatchNorm, so that eval mode matters everywhere.
Config small_config(const std::string& s_mode = "distillation", bool mlp_bn = true) {
  Config c;
  c.enc = "convnet_16_2";
  c.mc = "2x28";
  c.hid_dims = {8};
  c.mlp_bn = mlp_bn;
  c.l2bot_dim = 4;
  c.out_dim = 6;
  c.opt_lr = "0.05";
  c.n_epochs = 3;
  c.s_cmom = "ConstSched(0.5)";  // a student centre that would move if a pass updated it
  c.s_mode = s_mode;
  return c;
}

struct Run {
  Config cfg;
  DinoModel<double, Cpu> student, teacher;
  DinoTrainer<double, Cpu> trainer;
  Run(const Config& c, std::int64_t batchaccum)
      : cfg(c),
        student(model_options(c, 28)),
        teacher(model_options(c, 28)),
        trainer(c, student, teacher, batchaccum, 2) {
    InitOptions o;
    o.seed = 5;
    o.s_init = "random";  // student != teacher: non-trivial distillation gradients
    init_student_teacher(student, teacher, o);
  }
};

// Micro-batch k: two crops [b, 3, 28, 28], labels and target logits [b, 6].
struct Batch {
  std::vector<TensorD> crops;
  std::vector<std::int64_t> labels;
  TensorD logits;
  Batch(std::int64_t k, Index b) {
    Generator g(99, 0, 0, static_cast<std::uint64_t>(k));
    const std::size_t n = static_cast<std::size_t>(b * 3 * 28 * 28);
    for (int i = 0; i < 2; ++i) crops.push_back(TensorD::from_host({b, 3, 28, 28}, g.normal_vector<double>(n, 0, 1)));
    for (Index i = 0; i < b; ++i) labels.push_back(static_cast<std::int64_t>((k + 2 * i) % 6));
    logits = TensorD::from_host({b, 6}, g.normal_vector<double>(static_cast<std::size_t>(b * 6), 0, 2));
  }
  std::vector<const TensorD*> ptrs() const { return {&crops[0], &crops[1]}; }
  // target: 0 none (distillation), 1 labels, 2 target logits.
  StepTargets<double, Cpu> targets(int target) const {
    StepTargets<double, Cpu> t;
    if (target == 1) t.labels = labels;
    if (target == 2) t.logits = &logits;
    return t;
  }
};

// The tracker wired as a run wires it: capture after every backward, after_step after every micro-batch.
std::map<std::string, double> tracked_step(Run& r, GradVarTracker<double, Cpu>& tracker, const Batch& batch, int target,
                                           std::vector<double>* g_batch = nullptr) {
  Ctx<Cpu> ctx;
  r.trainer.set_after_backward([&] {
    tracker.capture_batch_grad(ctx, r.student.state().params);
    if (g_batch) *g_batch = r.student.state().params.grads().to_host();
  });
  r.trainer.step(ctx, batch.ptrs(), batch.targets(target));
  return tracker.after_step(ctx, r.trainer, r.student.state(), batch.ptrs(), batch.targets(target));
}

// g_i written out: sample i alone through both networks in eval mode without centre updates, the loss with
// gradient scale 1, the student's backward into zeroed gradients.
std::vector<double> brute_sample_grad(Run& r, const Batch& batch, Index i, int target) {
  Ctx<Cpu> ctx;
  std::vector<TensorD> crops;
  for (const TensorD& c : batch.crops) {
    const std::vector<double> h = c.to_host();
    const std::size_t per = static_cast<std::size_t>(3 * 28 * 28), at = static_cast<std::size_t>(i) * per;
    crops.push_back(TensorD::from_host({1, 3, 28, 28}, std::vector<double>(h.begin() + at, h.begin() + at + per)));
  }
  const MultiCrop mc = multicrop_preset(r.cfg.mc);
  LossOptions lo;
  lo.kind = parse_loss_kind(r.cfg.loss);
  lo.pairing = parse_pairing(r.cfg.loss_pairing);
  std::vector<const TensorD*> t_crops, s_crops;
  for (int k : mc.teacher_idx()) {
    lo.t_idx.push_back(k);
    t_crops.push_back(&crops[static_cast<std::size_t>(k)]);
  }
  for (int k : mc.student_idx()) {
    lo.s_idx.push_back(k);
    s_crops.push_back(&crops[static_cast<std::size_t>(k)]);
  }
  MulticropLoss<double, Cpu> loss(lo);
  ModelPass<double, Cpu> tp, sp;
  r.student.train(false);
  r.teacher.train(false);
  {
    NoGrad<Ctx<Cpu>> no_grad(ctx);
    r.teacher.forward(ctx, t_crops, false, tp);
  }
  r.student.forward(ctx, s_crops, false, sp);
  TensorD dlogits;
  if (target == 0) {
    loss.compute(ctx, sp.logits, tp.logits, &dlogits, 1.0);
  } else if (target == 1) {
    loss.compute(ctx, sp.logits, std::vector<std::int64_t>{batch.labels[static_cast<std::size_t>(i)]}, &dlogits, 1.0);
  } else {
    const std::vector<double> h = batch.logits.to_host();
    const TensorD row = TensorD::from_host({1, 6}, std::vector<double>(h.begin() + i * 6, h.begin() + i * 6 + 6));
    loss.compute(ctx, sp.logits, row, &dlogits, 1.0);
  }
  r.student.state().params.zero_grad();
  r.student.backward(ctx, dlogits, sp);
  return r.student.state().params.grads().to_host();
}

// sum_i ||g_batch - g_i||^2 / (B - 1) over the parameters whose name starts with prefix.
double brute_var(Run& r, const Batch& batch, const std::vector<double>& g_batch, int target,
                 const std::string& prefix) {
  const Index b = batch.crops[0].size(0);
  double sum = 0;
  for (Index i = 0; i < b; ++i) {
    const std::vector<double> g = brute_sample_grad(r, batch, i, target);
    for (const Entry& e : r.student.state().params.entries()) {
      if (e.name.rfind(prefix, 0) != 0) continue;
      for (Index j = 0; j < e.shape.numel(); ++j) {
        const std::size_t k = static_cast<std::size_t>(e.offset + j);
        sum += (g_batch[k] - g[k]) * (g_batch[k] - g[k]);
      }
    }
  }
  return sum / static_cast<double>(b - 1);
}

// Everything a training step reads or writes, besides the gradients.
struct Snapshot {
  std::vector<double> sp, sb, tp, tb, opt;
  std::vector<std::pair<std::string, std::int64_t>> sc, tc;
  std::vector<std::int64_t> opt_steps;
  std::int64_t micro = 0, global = 0;
  explicit Snapshot(Run& r)
      : sp(r.student.state().params.values().to_host()),
        sb(r.student.state().buffers.values().to_host()),
        tp(r.teacher.state().params.values().to_host()),
        tb(r.teacher.state().buffers.values().to_host()),
        sc(r.student.state().counters),
        tc(r.teacher.state().counters),
        opt_steps(r.trainer.optimizer().step_counts()),
        micro(r.trainer.micro_step()),
        global(r.trainer.global_step()) {
    for (const auto& s : r.trainer.optimizer().state_names()) {
      const auto v = r.trainer.optimizer().state(s).to_host();
      opt.insert(opt.end(), v.begin(), v.end());
    }
  }
  bool operator==(const Snapshot& o) const {
    return sp == o.sp && sb == o.sb && tp == o.tp && tb == o.tb && opt == o.opt && sc == o.sc && tc == o.tc &&
           opt_steps == o.opt_steps && micro == o.micro && global == o.global;
  }
};

TEST_CASE("GradVarTracker: the metric is sum_i ||g_batch - g_i||^2 / (B - 1) of the per-sample passes") {
  const char* modes[] = {"distillation", "supervised", "supervised"};
  for (int target = 0; target < 3; ++target)
    for (std::int64_t accum : {1, 2}) {
      CAPTURE(target);
      CAPTURE(accum);
      Run r(small_config(modes[target]), accum);
      GradVarTracker<double, Cpu> tracker;
      // Two micro-batches: the second one reuses the tracker's buffers (and, with accum 2, is the last of
      // an accumulation: g_batch is then the sum of both micro-batches' gradients of loss / 2).
      for (std::int64_t k = 0; k < 2; ++k) {
        const Batch batch(k, 3);
        std::vector<double> g_batch;
        const auto m = tracked_step(r, tracker, batch, target, &g_batch);
        REQUIRE(m.size() == 3);
        const double all = m.at("params/var(grad)"), enc = m.at("params/enc/var(grad)"),
                     head = m.at("params/head/var(grad)");
        CHECK(all > 0);
        CHECK(enc > 0);
        CHECK(head > 0);
        CHECK(all == doctest::Approx(enc + head).epsilon(1e-12));
        CHECK(all == doctest::Approx(brute_var(r, batch, g_batch, target, "")).epsilon(1e-12));
        CHECK(enc == doctest::Approx(brute_var(r, batch, g_batch, target, "enc.")).epsilon(1e-12));
        CHECK(head == doctest::Approx(brute_var(r, batch, g_batch, target, "head.")).epsilon(1e-12));
      }
    }
}

TEST_CASE("GradVarTracker: tracking leaves the training trajectory bit for bit unchanged") {
  for (std::int64_t accum : {1, 2}) {
    CAPTURE(accum);
    const Config c = small_config();
    Run plain(c, accum), tracked(c, accum);
    REQUIRE(Snapshot(plain) == Snapshot(tracked));
    GradVarTracker<double, Cpu> tracker;
    Ctx<Cpu> ctx;
    tracked.trainer.set_after_backward([&] { tracker.capture_batch_grad(ctx, tracked.student.state().params); });
    for (std::int64_t k = 0; k < 3 * accum; ++k) {
      const Batch batch(k, 3);
      const StepResult a = plain.trainer.step(ctx, batch.ptrs());
      const StepResult b = tracked.trainer.step(ctx, batch.ptrs());
      const auto m = tracker.after_step(ctx, tracked.trainer, tracked.student.state(), batch.ptrs(), {});
      CHECK(std::isfinite(m.at("params/var(grad)")));
      CHECK(a.loss.loss == b.loss.loss);
      REQUIRE(a.optimizer_step == b.optimizer_step);
      if (a.optimizer_step) CHECK(a.grad_norm == b.grad_norm);  // NaN without an optimizer step
      // Mid-accumulation the gradient store is what the next micro-batch adds to: it must be restored.
      CHECK(plain.student.state().params.grads().to_host() == tracked.student.state().params.grads().to_host());
    }
    CHECK(plain.trainer.global_step() == 3);
    CHECK(Snapshot(plain) == Snapshot(tracked));
  }
}

TEST_CASE("sample_gradient: parameters, BatchNorm statistics, centres, optimizer and position stay put") {
  Run r(small_config(), 2);
  Ctx<Cpu> ctx;
  // Three micro-batches of accumulation 2: optimizer state, moved running statistics and centres, and a
  // gradient store mid-accumulation.
  for (std::int64_t k = 0; k < 3; ++k) r.trainer.step(ctx, Batch(k, 3).ptrs());
  REQUIRE(r.trainer.global_step() == 1);
  const Snapshot before(r);
  const std::vector<double> g_before = r.student.state().params.grads().to_host();
  const Batch one(7, 1);
  const LossValues v = r.trainer.sample_gradient(ctx, one.ptrs());
  CHECK(std::isfinite(v.loss));
  CHECK(Snapshot(r) == before);
  // The gradient store now holds this sample's gradient alone, as the hand-written passes give it.
  CHECK(r.student.state().params.grads().to_host() != g_before);
  CHECK(r.student.state().params.grads().to_host() == brute_sample_grad(r, one, 0, 0));
  // A no-grad scope keeps no activations for the backward: refused with a message.
  NoGrad<Ctx<Cpu>> no_grad(ctx);
  CHECK(testing::contains(testing::error_of([&] { r.trainer.sample_gradient(ctx, one.ptrs()); }), "no-grad"));
}

TEST_CASE("GradVarTracker: one sample gives NaN, and misuse is refused with a message") {
  Run r(small_config("distillation", false), 1);  // no head BatchNorm: it cannot train on one sample
  GradVarTracker<double, Cpu> tracker;
  const Batch one(0, 1);
  Ctx<Cpu> ctx;
  r.trainer.set_after_backward([&] { tracker.capture_batch_grad(ctx, r.student.state().params); });
  r.trainer.step(ctx, one.ptrs());
  const std::vector<double> grads = r.student.state().params.grads().to_host();
  const auto m = tracker.after_step(ctx, r.trainer, r.student.state(), one.ptrs(), {});
  REQUIRE(m.size() == 3);
  for (const auto& kv : m) CHECK(std::isnan(kv.second));
  CHECK(r.student.state().params.grads().to_host() == grads);

  using testing::contains;
  using testing::error_of;
  const Batch three(1, 3);
  // No capture since the last after_step.
  CHECK(contains(error_of([&] { tracker.after_step(ctx, r.trainer, r.student.state(), three.ptrs(), {}); }),
                 "no batch gradient captured"));
  tracker.capture_batch_grad(ctx, r.student.state().params);
  const std::vector<const TensorD*> mixed = {&three.crops[0], &one.crops[1]};
  CHECK(contains(error_of([&] { tracker.after_step(ctx, r.trainer, r.student.state(), mixed, {}); }), "crop 1"));
  tracker.capture_batch_grad(ctx, r.student.state().params);
  StepTargets<double, Cpu> labels;
  labels.labels = {1, 2};
  CHECK(contains(error_of([&] { tracker.after_step(ctx, r.trainer, r.student.state(), three.ptrs(), labels); }),
                 "2 labels for a batch of 3"));
  // A tracker fed another model's gradients.
  Config other = small_config("distillation", false);
  other.out_dim = 7;
  Run o(other, 1);
  tracker.capture_batch_grad(ctx, o.student.state().params);
  CHECK(contains(error_of([&] { tracker.after_step(ctx, r.trainer, r.student.state(), three.ptrs(), {}); }),
                 "the captured gradient"));
}

}  // namespace
}  // namespace dino

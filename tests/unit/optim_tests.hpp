// Tests of SGD, Adam, AdamW (torch.optim, foreach=False), the parameter groups they use and clip_grad_norm_,
// against values worked out by hand (a plain-Python transcription of torch's single-tensor rules, which
// torch 1.13 reproduces exactly). One body for every backend: the including file defines DINO_TEST_BACKEND.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <dino/optim/clip.hpp>
#include <dino/optim/optimizer.hpp>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace dino::testing_optim {

using B = DINO_TEST_BACKEND;

// Worst |got - want| / max(|want|, 1) must stay within tol; reports that element.
template <class T>
void expect_values(const char* what, const std::vector<T>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]) / std::max(std::abs(want[i]), 1.0);
    if (!(err <= worst)) {  // NaN counts as the worst
      worst = err;
      worst_i = i;
    }
  }
  CHECK_MESSAGE(worst <= tol, std::string(what), "[", worst_i, "]: got ", static_cast<double>(got[worst_i]), ", want ",
                want[worst_i], " (relative error ", worst, ", tolerance ", tol, ")");
}

template <class T>
double tol() {
  // Double: CPU runs torch's operation order (bit-equal here), the CUDA kernels may fuse multiply-adds.
  return std::is_same_v<T, double> ? 1e-13 : 2e-6;
}

// A small model: conv.weight [2, 2] (group weights), conv.bias [2] and bn.weight [1] (group biases).
template <class T>
struct Toy {
  ModelState<T, B> st;
  Toy() {
    st.params.add("conv.weight", {2, 2});
    st.params.add("conv.bias", {2});
    st.params.add("bn.weight", {1});
    st.finalize();
    set_values({0.5, -1.0, 2.0, 0.25, 0.1, -0.2, 1.0});
  }
  static std::vector<T> cast(const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); }
  void set_values(const std::vector<double>& v) {
    B::copy_from_host(st.params.values().data(), cast(v).data(), st.params.numel());
  }
  void set_grads(const std::vector<double>& g) {
    B::copy_from_host(st.params.grads().data(), cast(g).data(), st.params.numel());
  }
  std::vector<T> values() const { return st.params.values().to_host(); }
  std::vector<T> grads() const { return st.params.grads().to_host(); }
};

// The gradients and hyper-parameters of the three steps of the worked example: lr and weight decay change
// every step; the biases group has its own lr and weight decay 0 (A4).
const std::vector<std::vector<double>> kGrads = {{0.2, -0.4, 0.1, 0.3, -0.5, 0.25, 0.05},
                                                 {-0.1, -0.3, 0.2, 0.0, 0.4, -0.15, 0.1},
                                                 {0.3, 0.1, -0.2, 0.05, -0.2, 0.35, -0.05}};
const std::vector<GroupHyper> kWeights = {{0.1, 0.5}, {0.05, 0.4}, {0.02, 0.3}};
const std::vector<GroupHyper> kBiases = {{0.2, 0.0}, {0.1, 0.0}, {0.04, 0.0}};

template <class T>
void run_example(Toy<T>& toy, Optimizer<T, B>& opt, Ctx<B>& ctx, const std::vector<std::vector<char>>& active = {}) {
  for (std::size_t s = 0; s < kGrads.size(); ++s) {
    toy.set_grads(kGrads[s]);
    opt.step(ctx, kWeights[s], kBiases[s], active.empty() ? std::vector<char>{} : active[s]);
  }
}

TEST_CASE_TEMPLATE("AdamW, Adam, SGD: three steps give the hand-computed values", T, float, double) {
  Ctx<B> ctx;
  SUBCASE("AdamW") {
    Toy<T> toy;
    Optimizer<T, B> opt(toy.st.params, {OptimizerKind::adamw});
    run_example(toy, opt, ctx);
    expect_values("p", toy.values(),
                  {0.3393516517579947, -0.7667804280744248, 1.7028477580343173, 0.08831924287287679, 0.3151517625400271,
                   -0.442577831757673, 0.6866782798582489},
                  tol<T>());
    expect_values("exp_avg", opt.state("exp_avg").to_host(),
                  {0.03719999999999999, -0.0494, 0.006100000000000001, 0.029299999999999993, -0.024499999999999994,
                   0.04174999999999999, 0.00805},
                  tol<T>());
    expect_values("exp_avg_sq", opt.state("exp_avg_sq").to_host(),
                  {0.00013991004000000015, 0.00025959016000000025, 8.994001000000009e-05, 9.232009000000008e-05,
                   0.0004493402500000004, 0.00020735256250000014, 1.4985002500000017e-05},
                  tol<T>());
    CHECK(opt.step_counts() == std::vector<std::int64_t>{3, 3, 3});
    // The gradients are read only (torch's update leaves p.grad alone).
    CHECK(toy.grads() == Toy<T>::cast(kGrads[2]));
  }
  SUBCASE("Adam: L2 decay of the weights group only") {
    Toy<T> toy;
    Optimizer<T, B> opt(toy.st.params, {OptimizerKind::adam});
    run_example(toy, opt, ctx);
    expect_values("p", toy.values(),
                  {0.3445608528362712, -0.8342028570747463, 1.8323364565151194, 0.09753334409695867, 0.3151517625400271,
                   -0.442577831757673, 0.6866782798582489},
                  tol<T>());
    expect_values("exp_avg", opt.state("exp_avg").to_host(),
                  {0.08270614387293707, -0.14782933648820812, 0.2110087547016571, 0.04817368017279841,
                   -0.024499999999999994, 0.04174999999999999, 0.00805},
                  tol<T>());
    expect_values("exp_avg_sq", opt.state("exp_avg_sq").to_host(),
                  {0.0003726140511694754, 0.0012676612396382457, 0.002254346776511311, 0.0001908303766591597,
                   0.0004493402500000004, 0.00020735256250000014, 1.4985002500000017e-05},
                  tol<T>());
    CHECK(toy.grads() == Toy<T>::cast(kGrads[2]));
  }
  SUBCASE("SGD with momentum 0.9") {
    Toy<T> toy;
    Optimizer<T, B> opt(toy.st.params, {OptimizerKind::sgd, 0.9});
    run_example(toy, opt, ctx);
    expect_values("p", toy.values(),
                  {0.41330010000000006, -0.8067502000000001, 1.7509158, 0.17374064999999997, 0.21480000000000002,
                   -0.2742, 0.97228},
                  tol<T>());
    expect_values("momentum_buffer", opt.state("momentum_buffer").to_host(),
                  {0.867495, -1.4774900000000002, 2.0892100000000005, 0.5242175, -0.245, 0.4175, 0.08050000000000003},
                  tol<T>());
  }
  SUBCASE("SGD without momentum: p -= lr (g + wd p), no buffer") {
    Toy<T> toy;
    Optimizer<T, B> opt(toy.st.params, {OptimizerKind::sgd, 0.0});
    CHECK(opt.state_names().empty());
    CHECK_THROWS_AS(opt.state("momentum_buffer"), Error);
    std::vector<double> p = {0.5, -1.0, 2.0, 0.25, 0.1, -0.2, 1.0};
    for (std::size_t s = 0; s < kGrads.size(); ++s)
      for (std::size_t i = 0; i < p.size(); ++i) {
        const GroupHyper h = i < 4 ? kWeights[s] : kBiases[s];
        p[i] -= h.lr * (kGrads[s][i] + h.weight_decay * p[i]);
      }
    run_example(toy, opt, ctx);
    expect_values("p", toy.values(), p, std::is_same_v<T, double> ? 1e-15 : 2e-6);
  }
}

TEST_CASE_TEMPLATE("AdamW: the first step is p (1 - lr wd) - lr g / (|g| + eps), over a long tensor", T, float,
                   double) {
  // Long enough for the parallel CPU loop and a multi-block CUDA grid.
  const Index n = 40000;
  ModelState<T, B> st;
  st.params.add("big.weight", {n / 8, 8});
  st.finalize();
  std::vector<T> p(static_cast<std::size_t>(n)), g(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    p[i] = static_cast<T>(std::sin(0.37 * static_cast<double>(i)));
    g[i] = static_cast<T>(std::cos(0.11 * static_cast<double>(i)) * 1e-3);
  }
  B::copy_from_host(st.params.values().data(), p.data(), n);
  B::copy_from_host(st.params.grads().data(), g.data(), n);
  Ctx<B> ctx;
  Optimizer<T, B> opt(st.params, {OptimizerKind::adamw, 0.9, 0.8, 0.99, 1e-6});
  opt.step(ctx, {0.01, 0.05}, {0.0, 0.0});
  std::vector<double> want(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double pi = p[i], gi = g[i];
    want[i] = pi * (1 - 0.01 * 0.05) - 0.01 * gi / (std::abs(gi) + 1e-6);
  }
  expect_values("p", st.params.values().to_host(), want, std::is_same_v<T, double> ? 1e-12 : 2e-6);
}

TEST_CASE_TEMPLATE("optimizers: an inactive tensor is skipped entirely and keeps its own step count", T, float,
                   double) {
  Ctx<B> ctx;
  for (OptimizerKind kind : {OptimizerKind::adamw, OptimizerKind::adam, OptimizerKind::sgd}) {
    CAPTURE(optimizer_name(kind));
    // conv.bias (id 1) is frozen during the first step, as the last layer during epoch 0; the biases group
    // decays here, so that a decay of the frozen tensor would show.
    Toy<T> toy;
    Optimizer<T, B> opt(toy.st.params, {kind});
    const std::vector<T> before = toy.values();
    const std::vector<T> state_before = opt.state(opt.state_names()[0]).to_host();
    toy.set_grads(kGrads[0]);
    opt.step(ctx, kWeights[0], {0.2, 0.3}, {1, 0, 1});
    const std::vector<T> after = toy.values(), state_after = opt.state(opt.state_names()[0]).to_host();
    CHECK(opt.step_counts() == std::vector<std::int64_t>{1, 0, 1});
    for (std::size_t i : {4, 5}) {
      CHECK(after[i] == before[i]);
      CHECK(state_after[i] == state_before[i]);
    }
    CHECK(after[0] != before[0]);
    toy.set_grads(kGrads[1]);
    opt.step(ctx, kWeights[1], {0.1, 0.3}, {1, 1, 1});
    toy.set_grads(kGrads[2]);
    opt.step(ctx, kWeights[2], {0.04, 0.3});
    CHECK(opt.step_counts() == std::vector<std::int64_t>{3, 2, 3});

    // conv.bias saw two steps, with its own bias correction counting from 1: a fresh optimizer over that
    // tensor alone, given the same two steps, lands on the same bits.
    ModelState<T, B> solo;
    solo.params.add("conv.bias", {2});
    solo.finalize();
    B::copy_from_host(solo.params.values().data(), before.data() + 4, 2);
    Optimizer<T, B> solo_opt(solo.params, {kind});
    B::copy_from_host(solo.params.grads().data(), Toy<T>::cast(kGrads[1]).data() + 4, 2);
    solo_opt.step(ctx, {}, {0.1, 0.3});
    B::copy_from_host(solo.params.grads().data(), Toy<T>::cast(kGrads[2]).data() + 4, 2);
    solo_opt.step(ctx, {}, {0.04, 0.3});
    const std::vector<T> all = toy.values(), alone = solo.params.values().to_host();
    CHECK(all[4] == alone[0]);
    CHECK(all[5] == alone[1]);
  }
}

TEST_CASE_TEMPLATE("optimizers: state and step counts restored into a fresh optimizer resume bit-identically", T,
                   float, double) {
  Ctx<B> ctx;
  for (OptimizerKind kind : {OptimizerKind::adamw, OptimizerKind::adam, OptimizerKind::sgd}) {
    CAPTURE(optimizer_name(kind));
    const std::vector<std::vector<char>> active = {{1, 0, 1}, {1, 1, 0}, {1, 1, 1}};
    Toy<T> whole;
    Optimizer<T, B> whole_opt(whole.st.params, {kind});
    run_example(whole, whole_opt, ctx, active);

    // The first step, then everything copied out through the host as a checkpoint would.
    Toy<T> first;
    Optimizer<T, B> first_opt(first.st.params, {kind});
    first.set_grads(kGrads[0]);
    first_opt.step(ctx, kWeights[0], kBiases[0], active[0]);
    Toy<T> resumed;
    Optimizer<T, B> resumed_opt(resumed.st.params, {kind});
    B::copy_from_host(resumed.st.params.values().data(), first.values().data(), first.st.params.numel());
    CHECK(resumed_opt.state_names() == first_opt.state_names());
    for (const std::string& name : first_opt.state_names()) {
      const std::vector<T> h = first_opt.state(name).to_host();
      B::copy_from_host(resumed_opt.state(name).data(), h.data(), static_cast<Index>(h.size()));
    }
    for (Index id = 0; id < 3; ++id) resumed_opt.set_step_count(id, first_opt.step_count(id));
    for (std::size_t s = 1; s < kGrads.size(); ++s) {
      resumed.set_grads(kGrads[s]);
      resumed_opt.step(ctx, kWeights[s], kBiases[s], active[s]);
    }
    CHECK(resumed.values() == whole.values());
    CHECK(resumed_opt.step_counts() == whole_opt.step_counts());
    for (const std::string& name : whole_opt.state_names())
      CHECK(resumed_opt.state(name).to_host() == whole_opt.state(name).to_host());

    // A step count of 0 means no state: its slices are cleared, and the next step starts afresh.
    resumed_opt.set_step_count(1, 0);
    for (const std::string& name : resumed_opt.state_names()) {
      const std::vector<T> h = resumed_opt.state(name).to_host();
      CHECK(h[4] == 0);
      CHECK(h[5] == 0);
      CHECK(h[0] != 0);
    }
    whole_opt.reset();
    CHECK(whole_opt.step_counts() == std::vector<std::int64_t>{0, 0, 0});
    for (const std::string& name : whole_opt.state_names())
      CHECK(whole_opt.state(name).to_host() == std::vector<T>(7, T(0)));
  }
}

TEST_CASE_TEMPLATE("optimizers: state names, groups and errors", T, float, double) {
  Ctx<B> ctx;
  Toy<T> toy;
  Optimizer<T, B> adamw(toy.st.params);
  CHECK(adamw.options().kind == OptimizerKind::adamw);
  CHECK(adamw.state_names() == std::vector<std::string>{"exp_avg", "exp_avg_sq"});
  CHECK(adamw.state("exp_avg").numel() == 7);
  CHECK_THROWS_AS(adamw.state("momentum_buffer"), Error);
  CHECK(adamw.groups().weights == std::vector<Index>{0});
  CHECK(adamw.groups().biases == std::vector<Index>{1, 2});
  Optimizer<T, B> sgd(toy.st.params, {OptimizerKind::sgd});
  CHECK(sgd.state_names() == std::vector<std::string>{"momentum_buffer"});
  CHECK_THROWS_AS(sgd.state("exp_avg"), Error);

  CHECK_THROWS_AS(adamw.step(ctx, {0.1, 0.0}, {0.1, 0.0}, {1, 1}), Error);
  CHECK_THROWS_AS(adamw.step(ctx, {-0.1, 0.0}, {0.1, 0.0}), Error);
  CHECK_THROWS_AS(adamw.step(ctx, {0.1, 0.0}, {0.1, -1.0}), Error);
  CHECK_THROWS_AS(adamw.step(ctx, {std::nan(""), 0.0}, {0.1, 0.0}), Error);
  CHECK_THROWS_AS(adamw.set_step_count(3, 1), Error);
  CHECK_THROWS_AS(adamw.set_step_count(0, -1), Error);
  CHECK(adamw.step_counts() == std::vector<std::int64_t>{0, 0, 0});  // the failed steps changed nothing
  CHECK_THROWS_AS((Optimizer<T, B>(toy.st.params, {OptimizerKind::adam, 0.9, 1.0})), Error);
  CHECK_THROWS_AS((Optimizer<T, B>(toy.st.params, {OptimizerKind::adamw, 0.9, 0.9, -0.1})), Error);
  CHECK_THROWS_AS((Optimizer<T, B>(toy.st.params, {OptimizerKind::sgd, -0.5})), Error);
  ModelState<T, B> unfinished;
  unfinished.params.add("w", {2, 2});
  CHECK_THROWS_AS((Optimizer<T, B>(unfinished.params)), Error);
  NamedStore<T, B> no_grads(false);
  no_grads.add("w", {2, 2});
  no_grads.finalize();
  CHECK_THROWS_AS((Optimizer<T, B>(no_grads)), Error);
}

TEST_CASE_TEMPLATE("clip_grad_norm: global norm, threshold, disabled, inactive tensors", T, float, double) {
  Ctx<B> ctx;
  const double t = std::is_same_v<T, double> ? 1e-15 : 1e-6;
  // ||conv.weight|| = 5, ||conv.bias|| = 12, ||bn.weight|| = 0: N = 13.
  const std::vector<double> g = {3, 0, 0, 4, 12, 0, 0};
  Toy<T> toy;
  toy.set_grads(g);

  SUBCASE("below the threshold nothing changes") {
    CHECK(clip_grad_norm(ctx, toy.st.params, 20.0) == doctest::Approx(13.0).epsilon(t));
    CHECK(clip_grad_norm(ctx, toy.st.params, 13.1) == doctest::Approx(13.0).epsilon(t));
    expect_values("grads", toy.grads(), g, 0);
  }
  SUBCASE("disabled by max_norm <= 0, the norm still returned") {
    CHECK(clip_grad_norm(ctx, toy.st.params, 0.0) == doctest::Approx(13.0).epsilon(t));
    CHECK(clip_grad_norm(ctx, toy.st.params, -1.0) == doctest::Approx(13.0).epsilon(t));
    expect_values("grads", toy.grads(), g, 0);
  }
  SUBCASE("above the threshold every gradient is scaled by max_norm / (N + 1e-6)") {
    CHECK(clip_grad_norm(ctx, toy.st.params, 6.5) == doctest::Approx(13.0).epsilon(t));
    const double coef = 6.5 / (13.0 + 1e-6);
    std::vector<double> want;
    for (double v : g) want.push_back(v * coef);
    expect_values("grads", toy.grads(), want, t);
    CHECK(grad_norm(ctx, toy.st.params) == doctest::Approx(6.5).epsilon(1e-6));
  }
  SUBCASE("inactive tensors take no part and are not scaled") {
    std::vector<double> norms;
    CHECK(grad_norm(ctx, toy.st.params, {0, 1, 1}, &norms) == doctest::Approx(12.0).epsilon(t));
    CHECK(norms == std::vector<double>{0.0, 12.0, 0.0});
    CHECK(clip_grad_norm(ctx, toy.st.params, 3.0, {0, 1, 1}) == doctest::Approx(12.0).epsilon(t));
    const double coef = 3.0 / (12.0 + 1e-6);
    expect_values("grads", toy.grads(), {3, 0, 0, 4, 12 * coef, 0, 0}, t);
    CHECK_THROWS_AS(grad_norm(ctx, toy.st.params, {1, 1}), Error);
  }
  SUBCASE("a NaN gradient makes every active gradient NaN, as torch's clamp propagates it") {
    toy.set_grads({3, 0, 0, 4, std::nan(""), 0, 0});
    CHECK(std::isnan(clip_grad_norm(ctx, toy.st.params, 1.0, {1, 1, 0})));
    const std::vector<T> got = toy.grads();
    for (std::size_t i = 0; i < 6; ++i) CHECK(std::isnan(got[i]));
    CHECK(got[6] == 0);
  }
}

TEST_CASE_TEMPLATE("sum_squares_f64: ranges and segments", T, float, double) {
  Ctx<B> ctx;
  // Integer values: every partial sum is exact, whatever the chunking.
  const Index n = 3 * 4096 + 77;
  std::vector<T> h(static_cast<std::size_t>(n));
  double exact = 0;
  for (std::size_t i = 0; i < h.size(); ++i) {
    h[i] = static_cast<T>(static_cast<int>(i % 7) - 3);
    exact += static_cast<double>(h[i]) * h[i];
  }
  auto x = Tensor<T, B>::from_host({n}, h);
  CHECK(B::sum_squares_f64(ctx, x.data(), n) == exact);
  CHECK(B::sum_squares_f64(ctx, x.data(), 0) == 0.0);

  // Segments, an empty one among them; each equals its range summed alone, bit for bit.
  const std::vector<Index> offsets = {0, 5, 5, 4100, 9000};
  const std::vector<Index> counts = {5, 0, 4095, 4900, n - 9000};
  std::vector<double> out(offsets.size(), -1.0);
  B::sum_squares_f64_segments(ctx, x.data(), offsets.data(), counts.data(), static_cast<Index>(offsets.size()),
                              out.data());
  for (std::size_t s = 0; s < offsets.size(); ++s) {
    double want = 0;
    for (Index i = offsets[s]; i < offsets[s] + counts[s]; ++i) want += static_cast<double>(h[i]) * h[i];
    CHECK(out[s] == want);
    CHECK(out[s] == B::sum_squares_f64(ctx, x.data() + offsets[s], counts[s]));
  }

  // Non-integer values: double accumulation keeps float inputs' sums accurate to double rounding.
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<T>(std::sin(1.3 * static_cast<double>(i)) * 0.1);
  x = Tensor<T, B>::from_host({n}, h);
  long double ref = 0;
  for (T v : h) ref += static_cast<long double>(v) * static_cast<long double>(v);
  CHECK(B::sum_squares_f64(ctx, x.data(), n) == doctest::Approx(static_cast<double>(ref)).epsilon(1e-13));
}

}  // namespace dino::testing_optim

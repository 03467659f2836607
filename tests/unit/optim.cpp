// Unit tests of the optimisation components on the CPU: the shared bodies of optim_tests.hpp (SGD, Adam,
// AdamW, clip_grad_norm_ as torch.optim / torch.nn.utils), plus the parameter groups of §7.1 (U.is_bias), the
// --opt parser, the host-side factors and the thread-count independence of the gradient norm.
#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "optim_tests.hpp"

namespace dino::testing_optim {
namespace {

TEST_CASE("is_bias and the two parameter groups follow names and ranks") {
  CHECK(is_bias("head.mlp.layer0.lin.bias", Shape{8}));
  CHECK(is_bias("enc.bn1.weight", Shape{16}));  // 1-D: norm weights are in the biases group
  CHECK(is_bias("odd.bias", Shape{2, 3}));      // the name alone suffices
  CHECK(is_bias("bias", Shape{2, 3}));
  CHECK_FALSE(is_bias("enc.conv1.weight", Shape{16, 3, 3, 3}));
  CHECK_FALSE(is_bias("enc.pos_embed", Shape{1, 5, 8}));  // ViT tokens are 3-D: weights
  CHECK_FALSE(is_bias("enc.biased.weight", Shape{4, 4}));
  CHECK_FALSE(is_bias("enc.bias_scale", Shape{4, 4}));
  CHECK_FALSE(is_bias("s", Shape{}));  // a 0-dim parameter is not 1-D

  ModelState<float, Cpu> st;
  st.params.add("enc.conv1.weight", {4, 3, 3, 3});
  st.params.add("enc.bn1.weight", {4});
  st.params.add("enc.bn1.bias", {4});
  st.params.add("head.lin.weight", {2, 4});
  st.params.add("head.lin.bias", {2});
  st.params.add("head.last_layer.lin2.weight", {5, 2});
  st.finalize();
  const ParamGroups g = make_param_groups(st.params);
  CHECK(g.weights == std::vector<Index>{0, 3, 5});
  CHECK(g.biases == std::vector<Index>{1, 2, 4});
  CHECK(g.group(1) == ParamGroup::biases);
  CHECK(g.group(5) == ParamGroup::weights);
  CHECK(&g.members(ParamGroup::biases) == &g.biases);
  CHECK(g.torch_order() == std::vector<Index>{0, 3, 5, 1, 2, 4});
  CHECK(std::string(param_group_name(ParamGroup::weights)) == "weights");
  CHECK_THROWS(g.group(6));
}

TEST_CASE("parse_optimizer_kind: the CLI names, and an error naming a bad one") {
  CHECK(parse_optimizer_kind("sgd") == OptimizerKind::sgd);
  CHECK(parse_optimizer_kind("adam") == OptimizerKind::adam);
  CHECK(parse_optimizer_kind("adamw") == OptimizerKind::adamw);
  for (OptimizerKind k : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw})
    CHECK(parse_optimizer_kind(optimizer_name(k)) == k);
  for (const char* bad : {"AdamW", "lars", "", "adamw "}) {
    CAPTURE(bad);
    try {
      parse_optimizer_kind(bad);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()) == std::string("unknown optimizer '") + bad + "': expected sgd, adam or adamw");
    }
  }
}

TEST_CASE("adam_factors: Python's scalar arithmetic of torch's single-tensor Adam(W)") {
  const auto f = optim::adam_factors<double>(0.01, 0.05, 0.9, 0.999, 1e-8, 2);
  CHECK(f.decay == 1 - 0.01 * 0.05);
  CHECK(f.one_minus_beta1 == 1 - 0.9);
  CHECK(f.bias_correction2_sqrt == std::sqrt(1 - std::pow(0.999, 2.0)));
  CHECK(f.neg_step_size == -(0.01 / (1 - std::pow(0.9, 2.0))));
  // Float runs get the double values rounded once, as torch casts Python scalars to the tensor's dtype.
  const auto g = optim::adam_factors<float>(0.01, 0.05, 0.9, 0.999, 1e-8, 2);
  CHECK(g.one_minus_beta2 == static_cast<float>(1 - 0.999));
  CHECK(g.neg_step_size == static_cast<float>(f.neg_step_size));
  const auto s = optim::sgd_factors<float>(0.1, 0.01, 0.9);
  CHECK(s.neg_lr == -0.1f);
  CHECK(s.momentum == 0.9f);
}

template <class T>
void check_thread_independence() {
  // Several chunks per thread and a ragged tail; values of mixed magnitude so that any change in the order
  // of additions would show in the last bits.
  const Index n = 1'000'003;
  ModelState<T, Cpu> st;
  st.params.add("a.weight", {n - 1000, 1});
  st.params.add("b.bias", {1000});
  st.finalize();
  std::vector<T> g(static_cast<std::size_t>(n));
  Generator gen(7);
  for (T& v : g) v = static_cast<T>(gen.normal() * std::exp(6 * gen.uniform() - 3));
  Cpu::copy_from_host(st.params.grads().data(), g.data(), n);

  Ctx<Cpu> ctx;
  const int saved = ctx.threads();
  std::vector<double> sums, norms;
  for (int threads : {1, 2, 3}) {
    ctx.set_threads(threads);
    sums.push_back(Cpu::sum_squares_f64(ctx, g.data(), n));
    norms.push_back(grad_norm(ctx, st.params));
  }
  ctx.set_threads(saved);
  CHECK(sums[0] == sums[1]);
  CHECK(sums[0] == sums[2]);
  CHECK(norms[0] == norms[1]);
  CHECK(norms[0] == norms[2]);
  long double ref = 0;
  for (T v : g) ref += static_cast<long double>(v) * static_cast<long double>(v);
  CHECK(sums[0] == doctest::Approx(static_cast<double>(ref)).epsilon(1e-13));
}

TEST_CASE("sum_squares_f64 and grad_norm: bit-identical for 1, 2 and 3 threads") {
  check_thread_independence<float>();
  check_thread_independence<double>();
}

}  // namespace
}  // namespace dino::testing_optim

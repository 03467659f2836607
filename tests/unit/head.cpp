// Unit tests of the DINO head (include/dino/head): state_dict names and counts, the l2bot_cfg grammar and
// its dimensions, initialisation statistics, centring and temperature (testbed DINOHead, spec 4 and A4).
#include <doctest/doctest.h>

#include <cmath>
#include <dino/cpu.hpp>
#include <dino/head/dino_head.hpp>
#include <string>
#include <vector>

#include "../support/errors.hpp"

namespace dino {
namespace {

using B = Cpu;

std::vector<std::string> names_of(const std::vector<Entry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name);
  return out;
}

using testing::contains;
using testing::error_of;

HeadOptions small_options() {
  HeadOptions o;
  o.embed_dim = 6;
  o.hid_dims = {7, 5};
  o.l2bot_dim = 4;
  o.out_dim = 9;
  return o;
}

TEST_CASE("head: the default head on E=512 has the testbed's 22,548,736 parameters and names") {
  ModelState<float, B> st;
  HeadOptions o;
  o.embed_dim = 512;
  DinoHead<float, B> head(st, "head", o);
  st.finalize();
  CHECK(st.params.numel() == 22548736);
  CHECK(names_of(st.params.entries()) ==
        std::vector<std::string>{"head.mlp.layer0.lin.weight", "head.mlp.layer0.lin.bias", "head.mlp.layer1.lin.weight",
                                 "head.mlp.layer1.lin.bias", "head.last_layer.lin1.weight", "head.last_layer.lin1.bias",
                                 "head.last_layer.lin2.weight"});
  CHECK(st.params.entry(6).shape == Shape{65536, 256});
  CHECK(names_of(st.buffers.entries()) == std::vector<std::string>{"head.cent"});
  CHECK(st.buffers.entry(head.cent_id()).shape == Shape{65536});
  CHECK(st.counters.empty());
  CHECK(head.out_dim() == 65536);
  // The wn freeze touches lin2's weight only (the default lin2 has no bias).
  CHECK(head.last_layer_lin2_params() == std::vector<Index>{6});
  CHECK(std::isnan(head.cmom));
  CHECK(head.temp == 1.0f);
}

TEST_CASE("head: BatchNorm names, torch's buffer order and counters with --mlp_bn") {
  ModelState<double, B> st;
  HeadOptions o = small_options();
  o.mlp_bn = true;
  o.l2bot_cfg = "wn/lb/fn/wn/lb/fnd";
  DinoHead<double, B> head(st, "teacher.head", o);
  st.finalize();
  CHECK(names_of(st.params.entries()) ==
        std::vector<std::string>{"teacher.head.mlp.layer0.lin.weight", "teacher.head.mlp.layer0.lin.bias",
                                 "teacher.head.mlp.layer0.bn.weight", "teacher.head.mlp.layer0.bn.bias",
                                 "teacher.head.mlp.layer1.lin.weight", "teacher.head.mlp.layer1.lin.bias",
                                 "teacher.head.mlp.layer1.bn.weight", "teacher.head.mlp.layer1.bn.bias",
                                 "teacher.head.last_layer.lin1.weight", "teacher.head.last_layer.lin1.bias",
                                 "teacher.head.last_layer.lin2.weight", "teacher.head.last_layer.lin2.bias"});
  CHECK(names_of(st.buffers.entries()) ==
        std::vector<std::string>{"teacher.head.cent", "teacher.head.mlp.layer0.bn.running_mean",
                                 "teacher.head.mlp.layer0.bn.running_var", "teacher.head.mlp.layer1.bn.running_mean",
                                 "teacher.head.mlp.layer1.bn.running_var"});
  REQUIRE(st.counters.size() == 2);
  CHECK(st.counters[0].first == "teacher.head.mlp.layer0.bn.num_batches_tracked");
  CHECK(head.last_layer_lin2_params() == std::vector<Index>{10, 11});
  CHECK(st.params.entry(8).shape == Shape{4, 5});
  CHECK(st.params.entry(10).shape == Shape{9, 4});
}

TEST_CASE("head: l2bot_cfg dimensions follow the testbed (mid = input without lin1, = K without lin2)") {
  struct Expect {
    std::string cfg;
    std::vector<Shape> shapes;  // of the last layer's parameters, in order
  };
  const std::vector<Expect> cases = {
      {"-/lb/fn/wn/l/-", {{4, 5}, {4}, {9, 4}}},
      {"-/-/fn/wn/lb/-", {{9, 5}, {9}}},  // no lin1: lin2 reads the MLP output
      {"wn/l/fnd/-/-/fn", {{9, 5}}},      // no lin2: lin1 maps straight to K
      {"-/-/-/-/lb/-", {{9, 5}, {9}}},    // the plain Linear of the distillation configs
  };
  for (const auto& c : cases) {
    CAPTURE(c.cfg);
    ModelState<float, B> st;
    HeadOptions o = small_options();
    o.l2bot_cfg = c.cfg;
    DinoHead<float, B> head(st, "head", o);
    st.finalize();
    std::vector<Shape> got;
    for (const auto& e : st.params.entries())
      if (e.name.rfind("head.last_layer.", 0) == 0) got.push_back(e.shape);
    CHECK(got == c.shapes);
  }
  // Without any Linear the output is the MLP's width, which must then equal out_dim.
  {
    ModelState<float, B> st;
    HeadOptions o = small_options();
    o.l2bot_cfg = "-/-/fn/-/-/-";
    o.out_dim = 5;
    DinoHead<float, B> head(st, "head", o);
    CHECK(head.last_layer().out_dim() == 5);
    CHECK(head.last_layer_lin2_params().empty());
  }
  ModelState<float, B> st;
  HeadOptions o = small_options();
  o.l2bot_cfg = "-/-/fn/-/-/-";
  const std::string msg = error_of([&] { DinoHead<float, B> head(st, "head", o); });
  CHECK(contains(msg, "-/-/fn/-/-/-"));
  CHECK(contains(msg, "no Linear"));
}

TEST_CASE("head: malformed l2bot_cfg names the cfg, the slot and what is allowed") {
  struct Bad {
    std::string cfg, slot_text, allowed;
  };
  const std::vector<Bad> bad = {
      {"-/lb/fn/wn/l", "6 slots", "got 5"},
      {"-/lb/fn/wn/l/-/-", "6 slots", "got 7"},
      {"x/lb/fn/wn/l/-", "slot 1 (weight normalisation of lin1) is 'x'", "allowed: wn, -"},
      {"-/lbb/fn/wn/l/-", "slot 2 (lin1) is 'lbb'", "allowed: l, lb, -"},
      {"-/lb/wn/wn/l/-", "slot 3 (feature normalisation after lin1) is 'wn'", "allowed: fn, fnd, -"},
      {"-/lb/fn/fn/l/-", "slot 4 (weight normalisation of lin2) is 'fn'", "allowed: wn, -"},
      {"-/lb/fn/wn//-", "slot 5 (lin2) is ''", "allowed: l, lb, -"},
      {"-/lb/fn/wn/l/wn", "slot 6 (feature normalisation after lin2) is 'wn'", "allowed: fn, fnd, -"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.cfg);
    ModelState<float, B> st;
    HeadOptions o = small_options();
    o.l2bot_cfg = b.cfg;
    const std::string msg = error_of([&] { DinoHead<float, B> head(st, "head", o); });
    CHECK(contains(msg, "'" + b.cfg + "'"));
    CHECK(contains(msg, b.slot_text));
    CHECK(contains(msg, b.allowed));
  }
  CHECK(L2BottleneckCfg::parse("wn/lb/fnd/-/l/fn").wn1);
  CHECK(L2BottleneckCfg::parse("wn/lb/fnd/-/l/fn").fn1 == "fnd");
}

TEST_CASE("head: bad dimensions and activations are errors naming the option") {
  auto build = [](HeadOptions o) {
    return error_of([&] {
      ModelState<float, B> st;
      DinoHead<float, B> head(st, "head", o);
    });
  };
  HeadOptions o = small_options();
  o.embed_dim = 0;
  CHECK(contains(build(o), "embed_dim"));
  o = small_options();
  o.out_dim = -3;
  CHECK(contains(build(o), "out_dim"));
  o = small_options();
  o.hid_dims = {7, 0};
  CHECK(contains(build(o), "hid_dims[1]"));
  o = small_options();
  o.l2bot_dim = 0;
  CHECK(contains(build(o), "l2bot_dim"));
  o = small_options();
  o.act = "tanh";
  CHECK(contains(build(o), "'tanh'"));
  o = small_options();
  o.act = "relu";  // the testbed lower-cases act_fn
  CHECK(build(o).empty());
  CHECK(contains(error_of([] { parse_head_init("xavier"); }), "'xavier'"));
  CHECK(parse_head_init("default") == HeadInit::default_init);
}

// Values of the store entries whose names contain `part` (weights or biases of the head Linears).
template <class T>
std::vector<double> values_where(ModelState<T, B>& st, const std::string& suffix, bool bn) {
  std::vector<double> out;
  const auto all = st.params.values().to_host();
  for (const auto& e : st.params.entries()) {
    const bool is_bn = contains(e.name, ".bn.");
    if (is_bn != bn || e.name.size() < suffix.size() ||
        e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    for (Index i = 0; i < e.shape.numel(); ++i) out.push_back(all[static_cast<std::size_t>(e.offset + i)]);
  }
  return out;
}

TEST_CASE("head: trunc_normal init has std 0.02, zero biases; BatchNorm 1 / 0 with running stats 0 / 1") {
  ModelState<double, B> st;
  HeadOptions o;
  o.embed_dim = 64;
  o.hid_dims = {256, 256};
  o.l2bot_dim = 64;
  o.out_dim = 512;
  o.mlp_bn = true;
  o.l2bot_cfg = "-/lb/fn/wn/lb/-";
  DinoHead<double, B> head(st, "head", o);
  st.finalize();
  // Make every value wrong first, so that the init must write them all.
  st.params.values().fill(7.0);
  st.buffers.values().fill(7.0);
  Generator gen(42);
  head.reset_parameters(gen);
  const auto w = values_where(st, "weight", false);
  REQUIRE(w.size() == 64 * 256 + 256 * 256 + 256 * 64 + 64 * 512);
  double mean = 0, sq = 0, mx = 0;
  for (double v : w) {
    mean += v;
    sq += v * v;
    mx = std::max(mx, std::abs(v));
  }
  mean /= static_cast<double>(w.size());
  const double sd = std::sqrt(sq / static_cast<double>(w.size()) - mean * mean);
  // ~1.3e5 draws: the std estimate's relative standard error is ~0.2%, the mean's ~5.5e-5.
  CHECK(sd == doctest::Approx(0.02).epsilon(0.01));
  CHECK(std::abs(mean) < 3e-4);
  CHECK(mx < 0.2);  // ~5 sigma at most among 1.3e5 normals; the absolute bound (2) never bites
  for (double v : values_where(st, "bias", false)) CHECK(v == 0.0);
  for (double v : values_where(st, "weight", true)) CHECK(v == 1.0);
  for (double v : values_where(st, "bias", true)) CHECK(v == 0.0);
  const auto buf = st.buffers.values().to_host();
  for (const auto& e : st.buffers.entries())
    for (Index i = 0; i < e.shape.numel(); ++i)
      CHECK(buf[static_cast<std::size_t>(e.offset + i)] == (contains(e.name, "running_var") ? 1.0 : 0.0));
  // Deterministic in the generator.
  const auto first = st.params.values().to_host();
  Generator again(42);
  head.reset_parameters(again);
  CHECK(st.params.values().to_host() == first);
  // initialize(method) is the testbed's reset_parameters(method): the same draws, buffers left alone.
  st.params.values().fill(7.0);
  st.buffers.values().fill(7.0);
  Generator third(42);
  head.initialize(third, HeadInit::trunc_normal);
  CHECK(st.params.values().to_host() == first);
  for (double v : st.buffers.values().to_host()) CHECK(v == 7.0);
}

TEST_CASE("head: default init draws weights and biases from U(+-1/sqrt(fan_in)) and keeps the centre") {
  ModelState<double, B> st;
  HeadOptions o;
  o.embed_dim = 16;
  o.hid_dims = {64};
  o.l2bot_dim = 32;
  o.out_dim = 128;
  o.l2bot_cfg = "-/lb/fn/wn/lb/-";
  DinoHead<double, B> head(st, "head", o);
  st.finalize();
  st.buffers.values().fill(0.25);  // a centre from training: initialize() leaves it alone
  Generator gen(3);
  head.initialize(gen, HeadInit::default_init);
  const auto all = st.params.values().to_host();
  for (const auto& e : st.params.entries()) {
    CAPTURE(e.name);
    const Index fan_in = contains(e.name, "layer0") ? 16 : contains(e.name, "lin1") ? 64 : 32;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    double sq = 0, mx = 0;
    for (Index i = 0; i < e.shape.numel(); ++i) {
      const double v = all[static_cast<std::size_t>(e.offset + i)];
      sq += v * v;
      mx = std::max(mx, std::abs(v));
    }
    CHECK(mx <= bound);
    CHECK(mx > 0.8 * bound);
    if (e.shape.numel() >= 1000)  // variance of U(-a, a) is a^2 / 3
      CHECK(sq / static_cast<double>(e.shape.numel()) == doctest::Approx(bound * bound / 3).epsilon(0.1));
  }
  for (double c : st.buffers.values().to_host()) CHECK(c == 0.25);
  // reset_parameters is the construction-time init: it also zeroes the centre.
  head.reset_parameters(gen);
  for (double c : st.buffers.values().to_host()) CHECK(c == 0.0);
}

// A small head with random parameters and a known centre, and its input.
struct Rig {
  ModelState<double, B> st;
  DinoHead<double, B> head;
  Tensor<double, B> x;
  Ctx<B> ctx;
  explicit Rig(HeadOptions o) : head(st, "head", o) {
    st.finalize();
    Generator gen(11);
    const auto p = gen.normal_vector<double>(static_cast<std::size_t>(st.params.numel()), 0.0, 0.5);
    B::copy_from_host(st.params.values().data(), p.data(), st.params.numel());
    x = Tensor<double, B>::from_host({3, 4, o.embed_dim},
                                     gen.normal_vector<double>(static_cast<std::size_t>(12 * o.embed_dim), 0.0, 1.0));
  }
  std::vector<double> cent() { return st.buffers.values().to_host(); }
  void set_cent(const std::vector<double>& c) { B::copy_from_host(st.buffers.value(head.cent_id()), c.data(), 9); }
};

TEST_CASE("head: logits use the old centre; the update is cmom * cent + (1 - cmom) * mean(proj)") {
  Rig r(small_options());
  std::vector<double> c0(9);
  for (int k = 0; k < 9; ++k) c0[static_cast<std::size_t>(k)] = 0.1 * k - 0.3;
  r.set_cent(c0);
  r.head.temp = 0.25;
  r.head.cmom = 0.9;
  Tensor<double, B> proj, logits;
  Saved<double, B> saved;
  r.head.forward(r.ctx, r.x, proj, logits, saved, true);
  REQUIRE(proj.shape() == Shape{3, 4, 9});
  REQUIRE(logits.shape() == Shape{3, 4, 9});
  const auto ph = proj.to_host(), lh = logits.to_host();
  for (std::size_t i = 0; i < ph.size(); ++i)
    CHECK(lh[i] == doctest::Approx((ph[i] - c0[i % 9]) / 0.25).epsilon(1e-13));
  const auto c1 = r.cent();
  for (int k = 0; k < 9; ++k) {
    double m = 0;
    for (int row = 0; row < 12; ++row) m += ph[static_cast<std::size_t>(row * 9 + k)];
    m /= 12;
    CHECK(c1[static_cast<std::size_t>(k)] ==
          doctest::Approx(0.9 * c0[static_cast<std::size_t>(k)] + 0.1 * m).epsilon(1e-13));
  }
  // The default fn-less bottleneck output is not centred by construction: the update did move the centre.
  CHECK(c1 != c0);

  // A second forward uses the updated centre.
  Tensor<double, B> proj2, logits2;
  Saved<double, B> saved2;
  r.head.forward(r.ctx, r.x, proj2, logits2, saved2, false);
  const auto l2 = logits2.to_host();
  for (std::size_t i = 0; i < l2.size(); ++i)
    CHECK(l2[i] == doctest::Approx((ph[i] - c1[i % 9]) / 0.25).epsilon(1e-13));
  CHECK(r.cent() == c1);  // update_cent false: unchanged

  // NaN momentum disables the update, in grad and no-grad mode alike.
  r.head.cmom = std::nan("");
  r.head.forward(r.ctx, r.x, proj2, logits2, saved2, true);
  CHECK(r.cent() == c1);
  // cmom 0 replaces the centre by the batch mean, also without grad (the centre is a buffer).
  r.head.cmom = 0.0;
  {
    NoGrad<Ctx<B>> ng(r.ctx);
    Saved<double, B> s3;
    r.head.forward(r.ctx, r.x, proj2, logits2, s3, true);
    CHECK_FALSE(s3.valid);
  }
  const auto c3 = r.cent();
  for (int k = 0; k < 9; ++k) {
    double m = 0;
    for (int row = 0; row < 12; ++row) m += ph[static_cast<std::size_t>(row * 9 + k)];
    CHECK(c3[static_cast<std::size_t>(k)] == doctest::Approx(m / 12).epsilon(1e-13));
  }
}

TEST_CASE("head: backward divides by temp; shape errors name the head") {
  Rig r(small_options());
  Tensor<double, B> proj, logits, dx1, dx2;
  Saved<double, B> saved;
  Generator gen(5);
  auto dl = Tensor<double, B>::from_host({3, 4, 9}, gen.normal_vector<double>(108, 0.0, 1.0));
  r.head.temp = 1.0;
  r.head.forward(r.ctx, r.x, proj, logits, saved, false);
  r.st.params.zero_grad();
  r.head.backward(r.ctx, dl, dx1, saved);
  const auto g1 = r.st.params.grads().to_host();
  r.head.temp = 0.5;
  r.head.forward(r.ctx, r.x, proj, logits, saved, false);
  r.st.params.zero_grad();
  r.head.backward(r.ctx, dl, dx2, saved);
  const auto g2 = r.st.params.grads().to_host();
  CHECK(dx1.shape() == Shape{3, 4, 6});
  const auto a = dx1.to_host(), b = dx2.to_host();
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(b[i] == doctest::Approx(2 * a[i]).epsilon(1e-12));
  for (std::size_t i = 0; i < g1.size(); ++i) CHECK(g2[i] == doctest::Approx(2 * g1[i]).epsilon(1e-12));

  auto bad = Tensor<double, B>::from_host({3, 4, 5}, std::vector<double>(60, 0.0));
  CHECK(contains(error_of([&] { r.head.forward(r.ctx, bad, proj, logits, saved, false); }), "head expects"));
  CHECK(contains(error_of([&] { r.head.backward(r.ctx, bad, dx1, saved); }), "gradient shape"));
  Saved<double, B> never;
  CHECK(contains(error_of([&] { r.head.backward(r.ctx, dl, dx1, never); }), "without a forward"));
}

TEST_CASE("head: --mlp_bn normalises over all crops x batch rows per feature") {
  HeadOptions o = small_options();
  o.mlp_bn = true;
  o.hid_dims = {5};
  o.l2bot_cfg = "-/-/-/-/lb/-";
  Rig r(o);
  Generator gen(1);
  r.head.initialize(gen, HeadInit::trunc_normal);
  Tensor<double, B> proj, logits;
  Saved<double, B> saved;
  r.head.forward(r.ctx, r.x, proj, logits, saved, false);
  // The BatchNorm output (saved by the MLP) standardises the Linear output per feature over all 12 rows.
  const Tensor<double, B>& lin_out = saved.child(0).tensor(0);
  const Tensor<double, B>& bn_out = saved.child(0).tensor(1);
  REQUIRE(lin_out.shape() == Shape{12, 5});
  REQUIRE(bn_out.shape() == Shape{12, 5});
  const auto h = lin_out.to_host(), v = bn_out.to_host();
  for (int f = 0; f < 5; ++f) {
    double m = 0, s = 0;
    for (int row = 0; row < 12; ++row) m += h[static_cast<std::size_t>(row * 5 + f)];
    m /= 12;
    for (int row = 0; row < 12; ++row) s += std::pow(h[static_cast<std::size_t>(row * 5 + f)] - m, 2);
    const double invstd = 1.0 / std::sqrt(s / 12 + 1e-5);
    for (int row = 0; row < 12; ++row) {
      const auto i = static_cast<std::size_t>(row * 5 + f);
      CHECK(v[i] == doctest::Approx((h[i] - m) * invstd).epsilon(1e-10));
    }
  }
  CHECK(r.st.counters[0].second == 1);
}

}  // namespace
}  // namespace dino

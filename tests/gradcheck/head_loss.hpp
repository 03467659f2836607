// Gradient checks of the DINO head (MLP, L2 bottleneck, centring and temperature) over several l2bot_cfg /
// --mlp_bn / activation layouts, and of every multicrop loss with respect to the student logits.
// One body for every backend: the including file defines DINO_TEST_BACKEND.
#pragma once
#include <dino/head/dino_head.hpp>
#include <dino/loss/multicrop.hpp>

#include "../support/gradcheck.hpp"

namespace dino::testing {

// The head as a Module (x [C, B, E] -> logits), so the shared harness can drive it; no centre update, a
// temperature != 1 and (through GradcheckOptions::adjust) a non-zero centre.
template <class T, class B>
class HeadAsModule : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  HeadAsModule(ModelState<T, B>& st, const HeadOptions& o) : Module<T, B>("head"), head_(st, "head", o) {
    head_.temp = T(0.7);
  }
  Shape output_shape(const Shape& in) const override { return {in[0], in[1], head_.out_dim()}; }
  void forward(Ctx<B>& ctx, const Tensor<T, B>& x, Tensor<T, B>& y, Saved<T, B>& saved) override {
    head_.forward(ctx, x, saved.tensor(0), y, saved.child(0), false);
  }
  void backward(Ctx<B>& ctx, const Tensor<T, B>& dy, Tensor<T, B>& dx, Saved<T, B>& saved) override {
    head_.backward(ctx, dy, dx, saved.child(0));
  }
  void reset_parameters(Generator& gen) override { head_.reset_parameters(gen); }
  void train(bool on = true) override {
    Module<T, B>::train(on);
    head_.train(on);
  }
  DinoHead<T, B>& head() { return head_; }

 private:
  DinoHead<T, B> head_;
};

inline HeadOptions gradcheck_head(std::vector<Index> hid, bool bn, const char* act, const char* cfg) {
  HeadOptions o;
  o.embed_dim = 3;
  o.hid_dims = std::move(hid);
  o.mlp_bn = bn;
  o.act = act;
  o.l2bot_dim = 4;
  o.l2bot_cfg = cfg;
  o.out_dim = 5;
  return o;
}

TEST_CASE_TEMPLATE("DinoHead: gradients over cfg slots, --mlp_bn, activations and an empty MLP", T, float, double) {
  using B = DINO_TEST_BACKEND;
  const std::vector<HeadOptions> layouts = {
      gradcheck_head({5, 4}, false, "GELU", "-/lb/fn/wn/l/-"),   // the default
      gradcheck_head({5, 4}, true, "ReLU", "wn/l/fn/wn/lb/fn"),  // every slot, BatchNorm over crops x batch
      gradcheck_head({4}, true, "GELU", "wn/lb/-/-/-/-"),        // lin1 straight to K
      gradcheck_head({}, false, "GELU", "-/-/-/-/lb/-"),         // plain Linear, identity MLP
      gradcheck_head({4}, false, "ReLU", "-/-/fn/wn/l/fn"),      // no lin1
      gradcheck_head({}, false, "GELU", "-/lb/-/-/-/fn"),
  };
  for (const HeadOptions& o : layouts) {
    CAPTURE(o.l2bot_cfg);
    CAPTURE(o.mlp_bn);
    CAPTURE(o.act);
    CAPTURE(o.hid_dims.size());
    GradcheckOptions opt;
    opt.adjust = [](ModelState<double, B>& st) {
      const Index id = st.buffers.find("head.cent");
      const std::vector<double> c{0.3, -0.2, 0.1, 0.5, -0.4};
      B::copy_from_host(st.buffers.value(id), c.data(), 5);
    };
    gradcheck<T>(
        [&](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          return std::make_unique<HeadAsModule<S, B>>(s, o);
        },
        Shape{2, 3, 3}, opt);
  }
}

// fnd is deliberately not the true gradient: with the norm n of lin2's output held constant, the head with
// fnd in the last slot must back-propagate exactly as the head without it given dlogits / n per row.
TEST_CASE_TEMPLATE("DinoHead: fnd in the last slot back-propagates dlogits / ||lin2 output||", T, float, double) {
  using B = DINO_TEST_BACKEND;
  Ctx<B> ctx;
  ModelState<T, B> s_fnd, s_plain;
  DinoHead<T, B> h_fnd(s_fnd, "head", gradcheck_head({5}, false, "GELU", "-/lb/fn/-/l/fnd"));
  DinoHead<T, B> h_plain(s_plain, "head", gradcheck_head({5}, false, "GELU", "-/lb/fn/-/l/-"));
  s_fnd.finalize();
  s_plain.finalize();
  Generator gen(8);
  const auto p = gen.normal_vector<T>(static_cast<std::size_t>(s_fnd.params.numel()), 0.0, 1.0);
  B::copy_from_host(s_fnd.params.values().data(), p.data(), s_fnd.params.numel());
  B::copy_from_host(s_plain.params.values().data(), p.data(), s_plain.params.numel());
  h_fnd.temp = h_plain.temp = T(0.5);
  auto x = Tensor<T, B>::from_host({2, 3, 3}, gen.normal_vector<T>(18, 0.0, 1.0));
  const auto dl_host = gen.normal_vector<T>(30, 0.0, 1.0);
  auto dl = Tensor<T, B>::from_host({2, 3, 5}, dl_host);
  Tensor<T, B> proj_f, logits_f, proj_p, logits_p, dx_f, dx_p;
  Saved<T, B> sf, sp;
  h_fnd.forward(ctx, x, proj_f, logits_f, sf, false);
  h_plain.forward(ctx, x, proj_p, logits_p, sp, false);
  const auto z = proj_p.to_host();
  std::vector<T> scaled(dl_host);
  for (int r = 0; r < 6; ++r) {
    double n = 0;
    for (int j = 0; j < 5; ++j)
      n += double(z[static_cast<std::size_t>(r * 5 + j)]) * z[static_cast<std::size_t>(r * 5 + j)];
    for (int j = 0; j < 5; ++j) scaled[static_cast<std::size_t>(r * 5 + j)] /= static_cast<T>(std::sqrt(n));
  }
  auto dl_scaled = Tensor<T, B>::from_host({2, 3, 5}, scaled);
  h_fnd.backward(ctx, dl, dx_f, sf);
  h_plain.backward(ctx, dl_scaled, dx_p, sp);
  const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
  const auto a = dx_f.to_host(), b = dx_p.to_host();
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(tol));
  const auto ga = s_fnd.params.grads().to_host(), gb = s_plain.params.grads().to_host();
  for (std::size_t i = 0; i < ga.size(); ++i) CHECK(ga[i] == doctest::Approx(gb[i]).epsilon(tol));
  // And it is not the true gradient of the normalised head (fn), whose forward is the same.
  ModelState<T, B> s_fn;
  DinoHead<T, B> h_fn(s_fn, "head", gradcheck_head({5}, false, "GELU", "-/lb/fn/-/l/fn"));
  s_fn.finalize();
  B::copy_from_host(s_fn.params.values().data(), p.data(), s_fn.params.numel());
  h_fn.temp = T(0.5);
  Tensor<T, B> proj_n, logits_n, dx_n;
  Saved<T, B> sn;
  h_fn.forward(ctx, x, proj_n, logits_n, sn, false);
  CHECK(logits_n.to_host() == logits_f.to_host());
  h_fn.backward(ctx, dl, dx_n, sn);
  double diff = 0;
  const auto c = dx_n.to_host();
  for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(double(c[i]) - a[i]));
  CHECK(diff > 1e-3);
}

// Central differences (eps 1e-6) of compute()'s selected value against the gradient it writes, in double,
// for every loss kind, target kind and pairing on a 2 + 2 crop layout (teacher crops 0, 1; students 0..3).
TEST_CASE("multicrop losses: gradients with respect to the student logits") {
  using B = DINO_TEST_BACKEND;
  Ctx<B> ctx;
  const Index cs = 4, b = 3, k = 5;
  Generator gen(21);
  const auto s_host = gen.normal_vector<double>(static_cast<std::size_t>(cs * b * k), 0.0, 1.5);
  auto s = Tensor<double, B>::from_host({cs, b, k}, s_host);
  auto t =
      Tensor<double, B>::from_host({2, b, k}, gen.normal_vector<double>(static_cast<std::size_t>(2 * b * k), 0.0, 1.5));
  auto tg = Tensor<double, B>::from_host({b, k}, gen.normal_vector<double>(static_cast<std::size_t>(b * k), 0.0, 1.5));
  const std::vector<std::int64_t> labels{4, 0, 2};
  const double eps = 1e-6, atol = 1e-5, rtol = 1e-3, scale = 0.5;
  for (LossKind kind : {LossKind::CE, LossKind::KL, LossKind::HPred, LossKind::MSE})
    for (Pairing pairing : {Pairing::All, Pairing::Same, Pairing::Opposite})
      for (int target : {0, 1, 2}) {
        const std::string kind_name = loss_kind_name(kind);
        CAPTURE(kind_name);
        const std::string pairing_str = pairing_name(pairing);
        CAPTURE(pairing_str);
        CAPTURE(target);  // 0 teacher logits, 1 labels, 2 target logits [B, K]
        MulticropLoss<double, B> loss({kind, pairing, {0, 1}, {0, 1, 2, 3}});
        auto value = [&](Tensor<double, B>* ds) {
          const LossValues v = target == 0   ? loss.compute(ctx, s, t, ds, scale)
                               : target == 1 ? loss.compute(ctx, s, labels, ds, scale)
                                             : loss.compute(ctx, s, tg, ds, scale);
          return scale * v.loss;
        };
        Tensor<double, B> ds;
        ds.resize({cs, b, k});
        ds.fill(std::nan(""));
        value(&ds);
        const auto analytic = ds.to_host();
        Worst worst;
        for (Index i = 0; i < s.numel(); ++i) {
          std::vector<double> h = s_host;
          h[static_cast<std::size_t>(i)] += eps;
          B::copy_from_host(s.data(), h.data(), s.numel());
          const double fp = value(nullptr);
          h[static_cast<std::size_t>(i)] -= 2 * eps;
          B::copy_from_host(s.data(), h.data(), s.numel());
          const double fm = value(nullptr);
          worst.consider("student logits", i, analytic[static_cast<std::size_t>(i)], (fp - fm) / (2 * eps), atol, rtol);
        }
        B::copy_from_host(s.data(), s_host.data(), s.numel());
        INFO("worst gradient element: ", worst.str());
        CHECK(worst.excess <= 0);
        // Not a tautology: the gradient is not zero (the same pairing leaves students 2, 3 without a term).
        double norm = 0;
        for (double g : analytic) norm += g * g;
        CHECK(norm > 1e-6);
      }
}

// The float losses agree with the double ones (values and gradients) on the same inputs.
TEST_CASE("multicrop losses: float agrees with double") {
  using B = DINO_TEST_BACKEND;
  Ctx<B> ctx;
  const Index cs = 3, b = 4, k = 33;
  Generator gen(4);
  const auto s_h = gen.normal_vector<float>(static_cast<std::size_t>(cs * b * k), 0.0, 3.0);
  const auto t_h = gen.normal_vector<float>(static_cast<std::size_t>(2 * b * k), 0.0, 3.0);
  const std::vector<std::int64_t> labels{1, 32, 0, 7};
  for (LossKind kind : {LossKind::CE, LossKind::KL, LossKind::HPred, LossKind::MSE})
    for (bool use_labels : {false, true}) {
      const std::string kind_name = loss_kind_name(kind);
      CAPTURE(kind_name);
      CAPTURE(use_labels);
      auto run = [&](auto zero) {
        using S = decltype(zero);
        auto s = Tensor<S, B>::from_host({cs, b, k}, std::vector<S>(s_h.begin(), s_h.end()));
        auto t = Tensor<S, B>::from_host({2, b, k}, std::vector<S>(t_h.begin(), t_h.end()));
        MulticropLoss<S, B> loss({kind, Pairing::Opposite, {0, 1}, {0, 1, 2}});
        Tensor<S, B> ds;
        const LossValues v = use_labels ? loss.compute(ctx, s, labels, &ds, 1.0) : loss.compute(ctx, s, t, &ds, 1.0);
        std::vector<double> out{v.CE, v.KL, v.H_pred, v.H_targ, v.MSE};
        const auto g = ds.to_host();
        out.insert(out.end(), g.begin(), g.end());
        return out;
      };
      const auto f = run(0.0f), d = run(0.0);
      REQUIRE(f.size() == d.size());
      Worst worst;
      for (std::size_t i = 0; i < f.size(); ++i)
        worst.consider(i < 5 ? "value" : "gradient", static_cast<Index>(i), f[i], d[i], 1e-5, 1e-5);
      INFO("worst element: ", worst.str());
      CHECK(worst.excess <= 0);
    }
}

}  // namespace dino::testing

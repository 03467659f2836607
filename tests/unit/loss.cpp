// Unit tests of the multicrop losses (include/dino/loss) and the row-wise ops under them: pair counts per
// multi-crop layout, every value against a direct double evaluation of spec 6.2 (with A4), input errors,
// gradient relations (CE = KL, grad_scale), numerical stability and thread-count independence.
#include <doctest/doctest.h>

#include <cmath>
#include <dino/cpu.hpp>
#include <dino/loss/multicrop.hpp>
#include <string>
#include <vector>

#include "../support/errors.hpp"

namespace dino {
namespace {

using B = Cpu;

using testing::contains;
using testing::error_of;

std::vector<Index> iota(Index n) {
  std::vector<Index> v;
  for (Index i = 0; i < n; ++i) v.push_back(i);
  return v;
}

TEST_CASE("loss: pair counts per --mc layout and the no-pair error") {
  struct Layout {
    std::vector<Index> t, s;
    std::size_t opposite, same, all;
  };
  // 2x + 4x crops (teacher sees the two globals), 2 crops, 1 crop (opposite: none).
  const std::vector<Layout> layouts = {{{0, 1}, iota(6), 10, 2, 12}, {{0, 1}, {0, 1}, 2, 2, 4}, {{0}, {0}, 0, 1, 1}};
  for (const auto& l : layouts) {
    CAPTURE(l.s.size());
    CHECK(make_pairs(l.t, l.s, Pairing::Same).size() == l.same);
    CHECK(make_pairs(l.t, l.s, Pairing::All).size() == l.all);
    if (l.opposite > 0) {
      CHECK(make_pairs(l.t, l.s, Pairing::Opposite).size() == l.opposite);
    } else {
      const std::string msg = error_of([&] { make_pairs(l.t, l.s, Pairing::Opposite); });
      CHECK(contains(msg, "No pairwise losses"));
      CHECK(contains(msg, "--loss_pairing same"));
      CHECK(contains(error_of([&] {
                       MulticropLoss<float, B>({LossKind::CE, Pairing::Opposite, l.t, l.s});
                     }),
                     "No pairwise losses"));
    }
  }
  // Teacher slots outside, student slots inside, skipping same-index pairs.
  const auto p = make_pairs({0, 1}, iota(3), Pairing::Opposite);
  REQUIRE(p.size() == 4);
  CHECK((p[0].t == 0 && p[0].s == 1 && p[1].t == 0 && p[1].s == 2 && p[2].t == 1 && p[2].s == 0 && p[3].t == 1 &&
         p[3].s == 2));
  CHECK(parse_pairing("opposite") == Pairing::Opposite);
  CHECK(contains(error_of([] { parse_pairing("cross"); }), "'cross'"));
  CHECK(parse_loss_kind("H_pred") == LossKind::HPred);
  CHECK(contains(error_of([] { parse_loss_kind("BCE"); }), "'BCE'"));
}

// A direct evaluation of spec 6.2 on host doubles; targets given as per-slot logits or probabilities.
struct Reference {
  double CE = 0, KL = 0, H_pred = 0, H_targ = 0, MSE = 0;
  std::vector<double> H_preds, H_targs;
};
std::vector<double> log_softmax(const double* x, Index k) {
  double m = x[0];
  for (Index j = 1; j < k; ++j) m = std::max(m, x[j]);
  double s = 0;
  for (Index j = 0; j < k; ++j) s += std::exp(x[j] - m);
  std::vector<double> out(static_cast<std::size_t>(k));
  for (Index j = 0; j < k; ++j) out[static_cast<std::size_t>(j)] = x[j] - m - std::log(s);
  return out;
}
// q[slot][b] probabilities, raw[slot][b] the MSE targets, ht[slot][b] target entropies.
Reference reference(const std::vector<double>& s, Index cs, Index b, Index k,
                    const std::vector<std::vector<std::vector<double>>>& q,
                    const std::vector<std::vector<std::vector<double>>>& raw,
                    const std::vector<std::vector<double>>& ht, const std::vector<CropPair>& pairs) {
  Reference r;
  std::vector<std::vector<std::vector<double>>> logp(static_cast<std::size_t>(cs));
  for (Index c = 0; c < cs; ++c) {
    double hm = 0;
    for (Index i = 0; i < b; ++i) {
      logp[static_cast<std::size_t>(c)].push_back(log_softmax(&s[static_cast<std::size_t>((c * b + i) * k)], k));
      double h = 0;
      for (double l : logp[static_cast<std::size_t>(c)].back()) h -= std::exp(l) * l;
      hm += h / static_cast<double>(b);
    }
    r.H_preds.push_back(hm);
    r.H_pred += hm / static_cast<double>(cs);
  }
  for (const auto& slot : ht) {
    double hm = 0;
    for (double h : slot) hm += h / static_cast<double>(b);
    r.H_targs.push_back(hm);
    r.H_targ += hm / static_cast<double>(ht.size());
  }
  for (const auto& p : pairs) {
    const auto t = static_cast<std::size_t>(p.t), c = static_cast<std::size_t>(p.s);
    for (Index i = 0; i < b; ++i) {
      const auto bi = static_cast<std::size_t>(i);
      double ce = 0, mse = 0;
      for (Index j = 0; j < k; ++j) {
        const auto kj = static_cast<std::size_t>(j);
        ce -= q[t][bi][kj] * logp[c][bi][kj];
        const double d = raw[t][bi][kj] - s[static_cast<std::size_t>((p.s * b + i) * k + j)];
        mse += d * d / static_cast<double>(k);
      }
      const double w = 1.0 / static_cast<double>(b * static_cast<Index>(pairs.size()));
      r.CE += ce * w;
      r.KL += (ce - ht[t][bi]) * w;
      r.MSE += mse * w;
    }
  }
  return r;
}

void check_values(const LossValues& v, const Reference& r, double tol) {
  CHECK(v.CE == doctest::Approx(r.CE).epsilon(tol));
  CHECK(v.KL == doctest::Approx(r.KL).epsilon(tol));
  CHECK(v.H_pred == doctest::Approx(r.H_pred).epsilon(tol));
  CHECK(v.H_targ == doctest::Approx(r.H_targ).epsilon(tol));
  CHECK(v.MSE == doctest::Approx(r.MSE).epsilon(tol));
  REQUIRE(v.H_preds.size() == r.H_preds.size());
  for (std::size_t i = 0; i < r.H_preds.size(); ++i) CHECK(v.H_preds[i] == doctest::Approx(r.H_preds[i]).epsilon(tol));
  REQUIRE(v.H_targs.size() == r.H_targs.size());
  for (std::size_t i = 0; i < r.H_targs.size(); ++i) CHECK(v.H_targs[i] == doctest::Approx(r.H_targs[i]).epsilon(tol));
}

TEST_CASE_TEMPLATE("loss: every value against a direct evaluation, for teacher logits, labels and 2-D targets", T,
                   float, double) {
  const Index cs = 4, ct = 2, b = 3, k = 7;
  const double tol = std::is_same_v<T, double> ? 1e-12 : 2e-5;
  Generator gen(17);
  auto round = [](std::vector<double> v) {
    for (auto& x : v) x = static_cast<double>(static_cast<T>(x));
    return v;
  };
  const auto s = round(gen.normal_vector<double>(static_cast<std::size_t>(cs * b * k), 0.0, 2.0));
  const auto t = round(gen.normal_vector<double>(static_cast<std::size_t>(ct * b * k), 0.0, 2.0));
  const auto tg = round(gen.normal_vector<double>(static_cast<std::size_t>(b * k), 0.0, 2.0));
  const std::vector<std::int64_t> labels{3, 0, 6};
  auto st = Tensor<T, B>::from_host({cs, b, k}, std::vector<T>(s.begin(), s.end()));
  auto tt = Tensor<T, B>::from_host({ct, b, k}, std::vector<T>(t.begin(), t.end()));
  auto tgt = Tensor<T, B>::from_host({b, k}, std::vector<T>(tg.begin(), tg.end()));
  Ctx<B> ctx;

  // Per-slot probabilities, raw targets and entropies of the three target kinds.
  using Slots = std::vector<std::vector<std::vector<double>>>;
  auto softmax_slots = [&](const std::vector<double>& logits, Index n_slots, bool broadcast, Slots& q, Slots& raw,
                           std::vector<std::vector<double>>& h) {
    for (Index sl = 0; sl < ct; ++sl) {
      const Index src = broadcast ? 0 : sl;
      q.emplace_back();
      raw.emplace_back();
      h.emplace_back();
      for (Index i = 0; i < b; ++i) {
        const double* row = &logits[static_cast<std::size_t>((src * b + i) * k)];
        const auto lq = log_softmax(row, k);
        std::vector<double> p;
        double hh = 0;
        for (double l : lq) {
          p.push_back(std::exp(l));
          hh -= std::exp(l) * l;
        }
        q.back().push_back(p);
        raw.back().push_back(std::vector<double>(row, row + k));
        h.back().push_back(hh);
      }
    }
    (void)n_slots;
  };
  Slots q_t, raw_t, q_g, raw_g, q_l;
  std::vector<std::vector<double>> h_t, h_g, h_l(static_cast<std::size_t>(ct), std::vector<double>(3, 0.0));
  softmax_slots(t, ct, false, q_t, raw_t, h_t);
  softmax_slots(tg, 1, true, q_g, raw_g, h_g);
  for (Index sl = 0; sl < ct; ++sl) {
    q_l.emplace_back();
    for (Index i = 0; i < b; ++i) {
      std::vector<double> oh(static_cast<std::size_t>(k), 0.0);
      oh[static_cast<std::size_t>(labels[static_cast<std::size_t>(i)])] = 1.0;
      q_l.back().push_back(oh);
    }
  }

  for (Pairing pairing : {Pairing::All, Pairing::Same, Pairing::Opposite}) {
    const std::string pairing_str = pairing_name(pairing);
    CAPTURE(pairing_str);
    MulticropLoss<T, B> loss({LossKind::CE, pairing, {0, 1}, iota(cs)});
    const auto& pairs = loss.pairs();
    {
      INFO("teacher logits");
      const LossValues v = loss.compute(ctx, st, tt);
      CHECK(v.n_pairs == static_cast<Index>(pairs.size()));
      check_values(v, reference(s, cs, b, k, q_t, raw_t, h_t, pairs), tol);
      CHECK(v.loss == v.CE);
    }
    {
      INFO("2-D targets, broadcast to both teacher slots");
      check_values(loss.compute(ctx, st, tgt), reference(s, cs, b, k, q_g, raw_g, h_g, pairs), tol);
    }
    {
      INFO("labels");
      const LossValues v = loss.compute(ctx, st, labels);
      check_values(v, reference(s, cs, b, k, q_l, q_l, h_l, pairs), tol);
      CHECK(v.H_targ == 0.0);
      CHECK(v.KL == v.CE);
    }
  }
  // The selected value.
  for (LossKind kind : {LossKind::KL, LossKind::HPred, LossKind::MSE}) {
    MulticropLoss<T, B> loss({kind, Pairing::All, {0, 1}, iota(cs)});
    const LossValues v = loss.compute(ctx, st, tt);
    CHECK(v.loss == (kind == LossKind::KL ? v.KL : kind == LossKind::HPred ? v.H_pred : v.MSE));
  }
}

TEST_CASE("loss: input errors name the culprit") {
  Ctx<B> ctx;
  MulticropLoss<double, B> loss({LossKind::CE, Pairing::Opposite, {0, 1}, iota(4)});
  Tensor<double, B> s({4, 3, 5}), t({2, 3, 5});
  s.fill(0.0);
  t.fill(0.0);
  CHECK(contains(error_of([&] { loss.compute(ctx, s, std::vector<std::int64_t>{0, 5, 1}); }), "label 5 of sample 1"));
  CHECK(contains(error_of([&] { loss.compute(ctx, s, std::vector<std::int64_t>{0, -1, 1}); }), "label -1"));
  CHECK(contains(error_of([&] {
                   loss.compute(ctx, s, std::vector<std::int64_t>{0, 1});
                 }),
                 "2 labels for a batch of 3"));
  Tensor<double, B> s3({3, 3, 5}), t3({3, 3, 5}), tk({2, 3, 4}), g4({3, 4}), g_bad({2, 5});
  s3.fill(0.0);
  t3.fill(0.0);
  tk.fill(0.0);
  g4.fill(0.0);
  g_bad.fill(0.0);
  CHECK(contains(error_of([&] { loss.compute(ctx, s3, t); }), "student logits must be [4, B, K]"));
  CHECK(contains(error_of([&] { loss.compute(ctx, s, t3); }), "teacher logits must be [2, 3, 5]"));
  CHECK(contains(error_of([&] { loss.compute(ctx, s, tk); }), "teacher logits must be [2, 3, 5]"));
  CHECK(contains(error_of([&] { loss.compute(ctx, s, g4); }), "n = 4 classes but the head's out_dim is 5"));
  CHECK(contains(error_of([&] { loss.compute(ctx, s, g_bad); }), "target logits [3, n]"));
  CHECK(error_of([&] { loss.compute(ctx, s, t); }).empty());
}

TEST_CASE("loss: CE and KL share their gradient; grad_scale scales it; H_pred's ignores the targets") {
  Ctx<B> ctx;
  Generator gen(2);
  auto s = Tensor<double, B>::from_host({3, 2, 6}, gen.normal_vector<double>(36, 0.0, 1.0));
  auto t = Tensor<double, B>::from_host({2, 2, 6}, gen.normal_vector<double>(24, 0.0, 1.0));
  auto t2 = Tensor<double, B>::from_host({2, 2, 6}, gen.normal_vector<double>(24, 0.0, 1.0));
  auto grad = [&](LossKind kind, const Tensor<double, B>& targ, double scale) {
    MulticropLoss<double, B> loss({kind, Pairing::All, {0, 1}, {0, 1, 2}});
    Tensor<double, B> ds;
    ds.resize({3, 2, 6});
    ds.fill(std::nan(""));
    loss.compute(ctx, s, targ, &ds, scale);
    return ds.to_host();
  };
  const auto ce = grad(LossKind::CE, t, 1.0), kl = grad(LossKind::KL, t, 1.0), ce_half = grad(LossKind::CE, t, 0.5);
  CHECK(ce == kl);
  for (std::size_t i = 0; i < ce.size(); ++i) CHECK(ce_half[i] == doctest::Approx(0.5 * ce[i]).epsilon(1e-14));
  CHECK(grad(LossKind::HPred, t, 1.0) == grad(LossKind::HPred, t2, 1.0));
  CHECK(grad(LossKind::CE, t, 1.0) != grad(LossKind::CE, t2, 1.0));
  // Softmax gradients of each row sum to zero (CE, KL, H_pred); the MSE's do not in general.
  for (LossKind kind : {LossKind::CE, LossKind::HPred}) {
    const auto g = grad(kind, t, 1.0);
    for (int r = 0; r < 6; ++r) {
      double sum = 0;
      for (int j = 0; j < 6; ++j) sum += g[static_cast<std::size_t>(r * 6 + j)];
      CHECK(std::abs(sum) < 1e-15);
    }
  }
}

TEST_CASE("rowwise ops: log_softmax is stable for large logits and agrees with the definition") {
  Ctx<B> ctx;
  const std::vector<double> x{1000.0, 999.0, 990.0, -1000.0, -1001.0, -1010.0};
  std::vector<double> logp(6), h(2);
  B::log_softmax_rows(ctx, x.data(), 2, 3, logp.data(), h.data());
  for (int r = 0; r < 2; ++r) {
    double s = 0;
    for (int j = 0; j < 3; ++j) {
      CHECK(std::isfinite(logp[static_cast<std::size_t>(r * 3 + j)]));
      s += std::exp(logp[static_cast<std::size_t>(r * 3 + j)]);
    }
    CHECK(s == doctest::Approx(1.0).epsilon(1e-15));
  }
  const double lse = std::log(1.0 + std::exp(-1.0) + std::exp(-10.0));
  CHECK(logp[0] == doctest::Approx(-lse).epsilon(1e-15));
  CHECK(logp[1] == doctest::Approx(-1.0 - lse).epsilon(1e-15));
  CHECK(h[0] == doctest::Approx(h[1]).epsilon(1e-14));  // shift invariance
  // A NaN logit poisons its row only.
  const std::vector<double> y{0.0, std::nan(""), 1.0, 0.0, 1.0, 2.0};
  B::log_softmax_rows(ctx, y.data(), 2, 3, logp.data(), h.data());
  CHECK(std::isnan(logp[0]));
  CHECK(std::isnan(h[0]));
  CHECK(std::isfinite(h[1]));
}

TEST_CASE("loss: values and gradients do not depend on the thread count") {
  const Index cs = 6, b = 8, k = 3000;
  Generator gen(9);
  auto s =
      Tensor<float, B>::from_host({cs, b, k}, gen.normal_vector<float>(static_cast<std::size_t>(cs * b * k), 0.0, 3.0));
  auto t =
      Tensor<float, B>::from_host({2, b, k}, gen.normal_vector<float>(static_cast<std::size_t>(2 * b * k), 0.0, 3.0));
  auto run = [&](int threads, LossKind kind) {
    Ctx<B> ctx(threads);
    MulticropLoss<float, B> loss({kind, Pairing::Opposite, {0, 1}, iota(cs)});
    Tensor<float, B> ds;
    const LossValues v = loss.compute(ctx, s, t, &ds, 1.0);
    std::vector<double> out{v.CE, v.KL, v.H_pred, v.H_targ, v.MSE};
    const auto g = ds.to_host();
    out.insert(out.end(), g.begin(), g.end());
    return out;
  };
  Ctx<B> probe;
  const int saved_threads = probe.threads();  // Ctx(n) sets OpenMP's global thread count
  for (LossKind kind : {LossKind::CE, LossKind::HPred, LossKind::MSE}) {
    const std::string kind_name = loss_kind_name(kind);
    CAPTURE(kind_name);
    CHECK(run(1, kind) == run(2, kind));
    CHECK(run(1, kind) == run(3, kind));
  }
  probe.set_threads(saved_threads);
}

}  // namespace
}  // namespace dino

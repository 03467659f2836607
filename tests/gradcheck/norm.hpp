// Gradient checks of BatchNorm1d/2d (train and eval mode) and GroupNorm (InstanceNorm, GroupNorm8, LayerNorm
// shapes), and direct checks of their forward values, BatchNorm's running statistics and its errors.
// One body for every backend: the including file defines DINO_TEST_BACKEND.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../support/gradcheck.hpp"

namespace dino::testing {
namespace norm_test {

using B = DINO_TEST_BACKEND;

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Non-trivial running statistics (variances in [0.5, 2], representable in float) for eval-mode checks.
inline void set_running_stats(ModelState<double, B>& s) {
  Generator gen(99);
  for (Index id = 0; id < s.buffers.count(); ++id) {
    const Entry& e = s.buffers.entry(id);
    const auto n = static_cast<std::size_t>(e.shape.numel());
    auto v = ends_with(e.name, "running_var") ? gen.uniform_vector<float>(n, 0.5, 2.0)
                                              : gen.normal_vector<float>(n, 0.0, 0.5);
    const std::vector<double> d(v.begin(), v.end());
    B::copy_from_host(s.buffers.value(id), d.data(), e.shape.numel());
  }
}

template <class T>
void upload(T* dst, const std::vector<double>& v) {
  const std::vector<T> t(v.begin(), v.end());
  B::copy_from_host(dst, t.data(), static_cast<Index>(t.size()));
}

template <class T>
std::vector<double> download(const T* src, Index n) {
  std::vector<T> t(static_cast<std::size_t>(n));
  B::copy_to_host(t.data(), src, n);
  return std::vector<double>(t.begin(), t.end());
}

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

// Mean and biased variance of channel j of x [N, C, S], in double.
inline void channel_stats(const std::vector<double>& x, Index n, Index c, Index s, Index j, double& mean,
                          double& var) {
  double sum = 0, sq = 0;
  for (Index i = 0; i < n; ++i)
    for (Index k = 0; k < s; ++k) sum += x[static_cast<std::size_t>((i * c + j) * s + k)];
  mean = sum / double(n * s);
  for (Index i = 0; i < n; ++i)
    for (Index k = 0; k < s; ++k) {
      const double d = x[static_cast<std::size_t>((i * c + j) * s + k)] - mean;
      sq += d * d;
    }
  var = sq / double(n * s);
}

}  // namespace norm_test

TEST_CASE_TEMPLATE("BatchNorm1d: gradients in train and eval mode, [N, C] and [N, C, L]", T, float, double) {
  using B = DINO_TEST_BACKEND;
  for (bool train : {true, false})
    for (const Shape& shape : {Shape{6, 4}, Shape{3, 4, 5}}) {
      const std::string shape_str = shape.str();
      CAPTURE(train);
      CAPTURE(shape_str);
      GradcheckOptions o;
      o.train = train;
      if (!train) o.adjust = norm_test::set_running_stats;
      gradcheck<T>(
          [](auto& s) {
            using S = typename std::decay_t<decltype(s)>::scalar;
            return std::make_unique<BatchNorm1d<S, B>>(s, "bn", typename BatchNorm1d<S, B>::Options{4});
          },
          shape, o);
    }
}

TEST_CASE_TEMPLATE("BatchNorm2d: gradients in train and eval mode, non-square H, W", T, float, double) {
  using B = DINO_TEST_BACKEND;
  for (bool train : {true, false}) {
    CAPTURE(train);
    GradcheckOptions o;
    o.train = train;
    if (!train) o.adjust = norm_test::set_running_stats;
    gradcheck<T>(
        [](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          return std::make_unique<BatchNorm2d<S, B>>(s, "enc.bn", typename BatchNorm2d<S, B>::Options{3, 1e-5, 0.1});
        },
        Shape{2, 3, 3, 5}, o);
  }
}

TEST_CASE_TEMPLATE("GroupNorm: gradients (InstanceNorm, GroupNorm8, LayerNorm layouts; affine on and off)", T, float,
                   double) {
  using B = DINO_TEST_BACKEND;
  struct Case {
    Index c, g;
    bool affine;
    Shape shape;
  };
  const Case cases[] = {
      {4, 4, true, {2, 4, 3, 5}},   // InstanceNorm: G = C
      {4, 4, false, {2, 4, 2, 3}},  //
      {4, 2, true, {2, 4, 2, 3}},   // G = C/2
      {16, 2, true, {2, 16, 2, 3}},  // GroupNorm8: G = C/8
      {4, 1, true, {3, 4, 2, 3}},   // LayerNorm: G = 1
      {4, 1, false, {2, 4, 5}},     // [N, C, L]
      {6, 2, true, {3, 6}},         // [N, C]
  };
  for (const Case& k : cases) {
    const std::string shape_str = k.shape.str();
    CAPTURE(k.c);
    CAPTURE(k.g);
    CAPTURE(k.affine);
    CAPTURE(shape_str);
    gradcheck<T>(
        [&](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          return std::make_unique<GroupNorm<S, B>>(s, "gn",
                                                   typename GroupNorm<S, B>::Options{k.g, k.c, 1e-5, k.affine});
        },
        k.shape);
  }
}

TEST_CASE_TEMPLATE("BatchNorm: state names, construction init and running statistics after two train forwards", T,
                   float, double) {
  using B = DINO_TEST_BACKEND;
  using norm_test::download;
  using norm_test::upload;
  for (int spatial : {1, 2}) {
    CAPTURE(spatial);
    const Shape shape = spatial == 1 ? Shape{4, 3, 5} : Shape{2, 3, 2, 5};
    const Index n = shape[0], c = 3, s = shape.numel() / (shape[0] * c);
    ModelState<T, B> state;
    BatchNorm<T, B> bn(state, "enc.bn", {c, 1e-5, 0.1}, spatial);
    state.finalize();
    Generator gen(5);
    bn.reset_parameters(gen);
    // The names and order of torch's state_dict.
    REQUIRE(state.params.count() == 2);
    CHECK(state.params.entry(0).name == "enc.bn.weight");
    CHECK(state.params.entry(1).name == "enc.bn.bias");
    REQUIRE(state.buffers.count() == 2);
    CHECK(state.buffers.entry(0).name == "enc.bn.running_mean");
    CHECK(state.buffers.entry(1).name == "enc.bn.running_var");
    REQUIRE(state.counters.size() == 1);
    CHECK(state.counters[0].first == "enc.bn.num_batches_tracked");
    CHECK(download(state.params.value(bn.weight_id()), c) == std::vector<double>{1, 1, 1});
    CHECK(download(state.params.value(bn.bias_id()), c) == std::vector<double>{0, 0, 0});
    CHECK(download(state.buffers.value(bn.running_mean_id()), c) == std::vector<double>{0, 0, 0});
    CHECK(download(state.buffers.value(bn.running_var_id()), c) == std::vector<double>{1, 1, 1});
    CHECK(bn.num_batches_tracked() == 0);

    const std::vector<double> w = {0.5, -1.5, 2.0}, b = {0.1, 0.25, -0.3};
    upload<T>(state.params.value(bn.weight_id()), w);
    upload<T>(state.params.value(bn.bias_id()), b);
    // Inputs representable in T with a mean far from 0, so the variance is not E[x^2] - E[x]^2's to lose.
    auto x1h = gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), 3.0, 2.0);
    auto x2h = gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), -0.5, 0.7);
    auto x1 = Tensor<T, B>::from_host(shape, x1h);
    auto x2 = Tensor<T, B>::from_host(shape, x2h);
    Ctx<B> ctx;
    Tensor<T, B> y1, y2;
    Saved<T, B> s1, s2;
    bn.forward(ctx, x1, y1, s1);
    {
      NoGrad<Ctx<B>> ng(ctx);  // running statistics are updated without grad too, as torch's
      bn.forward(ctx, x2, y2, s2);
    }
    CHECK(bn.num_batches_tracked() == 2);
    CHECK(state.counter(bn.num_batches_tracked_id()) == 2);

    const std::vector<double> xd1(x1h.begin(), x1h.end()), xd2(x2h.begin(), x2h.end());
    const auto rm = download(state.buffers.value(bn.running_mean_id()), c);
    const auto rv = download(state.buffers.value(bn.running_var_id()), c);
    const auto yh1 = download(y1.data(), y1.numel()), yh2 = download(y2.data(), y2.numel());
    const double tol = norm_test::tolerance<T>(), count = double(n * s);
    for (Index j = 0; j < c; ++j) {
      double m1, v1, m2, v2;
      norm_test::channel_stats(xd1, n, c, s, j, m1, v1);
      norm_test::channel_stats(xd2, n, c, s, j, m2, v2);
      const double u1 = v1 * count / (count - 1), u2 = v2 * count / (count - 1);
      const auto k = static_cast<std::size_t>(j);
      CHECK(rm[k] == doctest::Approx(0.9 * (0.9 * 0.0 + 0.1 * m1) + 0.1 * m2).epsilon(tol));
      CHECK(rv[k] == doctest::Approx(0.9 * (0.9 * 1.0 + 0.1 * u1) + 0.1 * u2).epsilon(tol));
      // The outputs use the batch statistics with the biased variance.
      for (Index i = 0; i < n; ++i)
        for (Index q = 0; q < s; ++q) {
          const auto e = static_cast<std::size_t>((i * c + j) * s + q);
          CHECK(yh1[e] == doctest::Approx(w[k] * (xd1[e] - m1) / std::sqrt(v1 + 1e-5) + b[k]).epsilon(tol));
          CHECK(yh2[e] == doctest::Approx(w[k] * (xd2[e] - m2) / std::sqrt(v2 + 1e-5) + b[k]).epsilon(tol));
        }
    }
  }
}

TEST_CASE_TEMPLATE("BatchNorm and GroupNorm: statistics of many values far from zero", T, float, double) {
  // One-pass E[x^2] - E[x]^2 or a plain running sum in float would be off by far more than the tolerance here.
  using B = DINO_TEST_BACKEND;
  using norm_test::download;
  const Index n = 4096, c = 3;
  ModelState<T, B> state;
  BatchNorm1d<T, B> bn(state, "bn", {c});
  GroupNorm<T, B> ln(state, "ln", {1, n});
  state.finalize();
  Generator gen(8);
  bn.reset_parameters(gen);
  ln.reset_parameters(gen);
  auto xh = gen.normal_vector<T>(static_cast<std::size_t>(n * c), 100.0, 0.5);
  const std::vector<double> xd(xh.begin(), xh.end());
  Ctx<B> ctx;
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-10;
  // BatchNorm1d over [4096, 3]: per channel over 4096 rows.
  auto x = Tensor<T, B>::from_host({n, c}, xh);
  Tensor<T, B> y;
  Saved<T, B> saved;
  bn.forward(ctx, x, y, saved);
  const auto yh = download(y.data(), y.numel());
  double worst = 0;
  for (Index j = 0; j < c; ++j) {
    double m, v;
    norm_test::channel_stats(xd, n, c, 1, j, m, v);
    for (Index i = 0; i < n; ++i) {
      const auto e = static_cast<std::size_t>(i * c + j);
      worst = std::max(worst, std::abs(yh[e] - (xd[e] - m) / std::sqrt(v + 1e-5)));
    }
  }
  CHECK(worst < tol);
  // GroupNorm with G = 1 (LayerNorm) over [3, 4096]: per sample over 4096 channels.
  auto xt = Tensor<T, B>::from_host({c, n}, xh);
  Tensor<T, B> yl;
  Saved<T, B> saved_l;
  ln.forward(ctx, xt, yl, saved_l);
  const auto ylh = download(yl.data(), yl.numel());
  worst = 0;
  for (Index i = 0; i < c; ++i) {
    double m, v;
    norm_test::channel_stats(xd, 1, c, n, i, m, v);
    for (Index j = 0; j < n; ++j) {
      const auto e = static_cast<std::size_t>(i * n + j);
      worst = std::max(worst, std::abs(ylh[e] - (xd[e] - m) / std::sqrt(v + 1e-5)));
    }
  }
  CHECK(worst < tol);
}

TEST_CASE_TEMPLATE("BatchNorm: eval mode uses the running statistics and leaves the buffers unchanged", T, float,
                   double) {
  using B = DINO_TEST_BACKEND;
  using norm_test::download;
  using norm_test::upload;
  const Shape shape{3, 2, 2, 3};
  const Index n = 3, c = 2, s = 6;
  ModelState<T, B> state;
  BatchNorm2d<T, B> bn(state, "bn", {c});
  state.finalize();
  Generator gen(11);
  bn.reset_parameters(gen);
  const std::vector<double> w = {1.25, -0.75}, b = {0.5, -0.25}, rm = {0.375, -0.5}, rv = {1.5, 0.625};
  upload<T>(state.params.value(bn.weight_id()), w);
  upload<T>(state.params.value(bn.bias_id()), b);
  upload<T>(state.buffers.value(bn.running_mean_id()), rm);
  upload<T>(state.buffers.value(bn.running_var_id()), rv);
  bn.eval();
  auto xh = gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), 0.0, 1.0);
  auto dyh = gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), 0.0, 1.0);
  auto x = Tensor<T, B>::from_host(shape, xh);
  auto dy = Tensor<T, B>::from_host(shape, dyh);
  Ctx<B> ctx;
  Tensor<T, B> y, y_ng, dx;
  Saved<T, B> saved, saved_ng;
  bn.forward(ctx, x, y, saved);
  {
    NoGrad<Ctx<B>> ng(ctx);
    bn.forward(ctx, x, y_ng, saved_ng);
  }
  state.params.zero_grad();
  bn.backward(ctx, dy, dx, saved);
  // Bit-identical buffers: eval mode does not touch them.
  const auto rm_after = download(state.buffers.value(bn.running_mean_id()), c);
  const auto rv_after = download(state.buffers.value(bn.running_var_id()), c);
  for (std::size_t k = 0; k < 2; ++k) {
    CHECK(rm_after[k] == double(static_cast<T>(rm[k])));
    CHECK(rv_after[k] == double(static_cast<T>(rv[k])));
  }
  CHECK(bn.num_batches_tracked() == 0);
  const auto yh = download(y.data(), y.numel()), yngh = download(y_ng.data(), y_ng.numel());
  const auto dxh = download(dx.data(), dx.numel());
  const auto dw = download(state.params.grad(bn.weight_id()), c), db = download(state.params.grad(bn.bias_id()), c);
  const double tol = norm_test::tolerance<T>();
  for (Index j = 0; j < c; ++j) {
    const auto k = static_cast<std::size_t>(j);
    const double is = 1 / std::sqrt(rv[k] + 1e-5);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (Index i = 0; i < n; ++i)
      for (Index q = 0; q < s; ++q) {
        const auto e = static_cast<std::size_t>((i * c + j) * s + q);
        const double xhat = (double(xh[e]) - rm[k]) * is;
        CHECK(yh[e] == doctest::Approx(w[k] * xhat + b[k]).epsilon(tol));
        CHECK(yngh[e] == yh[e]);
        // Eval mode: the gradient is the affine map's only.
        CHECK(dxh[e] == doctest::Approx(double(dyh[e]) * w[k] * is).epsilon(tol));
        sum_dy += dyh[e];
        sum_dy_xhat += dyh[e] * xhat;
      }
    CHECK(db[k] == doctest::Approx(sum_dy).epsilon(tol));
    CHECK(dw[k] == doctest::Approx(sum_dy_xhat).epsilon(tol));
  }

  // Backward follows the mode its forward ran in, not the mode at backward time.
  Tensor<T, B> y_t, y_t2, dx_t, dx_t2;
  Saved<T, B> saved_t, saved_t2;
  bn.train();
  bn.forward(ctx, x, y_t, saved_t);
  bn.forward(ctx, x, y_t2, saved_t2);
  bn.backward(ctx, dy, dx_t2, saved_t2);
  bn.eval();
  bn.backward(ctx, dy, dx_t, saved_t);
  CHECK(dx_t.to_host() == dx_t2.to_host());
}

TEST_CASE_TEMPLATE("BatchNorm and GroupNorm: one value per channel in training and bad shapes throw", T, float,
                   double) {
  using B = DINO_TEST_BACKEND;
  ModelState<T, B> state;
  BatchNorm1d<T, B> bn1(state, "head.bn", {3});
  BatchNorm2d<T, B> bn2(state, "enc.bn", {3});
  GroupNorm<T, B> gn(state, "enc.gn", {3, 3});
  state.finalize();
  Generator gen(3);
  bn1.reset_parameters(gen);
  bn2.reset_parameters(gen);
  gn.reset_parameters(gen);
  Ctx<B> ctx;
  auto run = [&](Module<T, B>& m, const Shape& shape) {
    auto x = Tensor<T, B>::from_host(shape, gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), 0, 1));
    Tensor<T, B> y;
    Saved<T, B> saved;
    m.forward(ctx, x, y, saved);
  };
  auto message = [&](Module<T, B>& m, const Shape& shape) -> std::string {
    try {
      run(m, shape);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string msg = message(bn1, {1, 3});
  CHECK(msg.find("'head.bn'") != std::string::npos);
  CHECK(msg.find("expected more than 1 value per channel when training") != std::string::npos);
  CHECK(msg.find("\n") == std::string::npos);
  CHECK_THROWS_AS(run(bn1, {1, 3, 1}), Error);
  CHECK_THROWS_AS(run(bn2, {1, 3, 1, 1}), Error);
  // The rejected batch leaves the running statistics and the counter alone.
  CHECK(norm_test::download(state.buffers.value(bn1.running_mean_id()), 3) == std::vector<double>{0, 0, 0});
  CHECK(bn1.num_batches_tracked() == 0);
  CHECK(bn2.num_batches_tracked() == 0);
  // Two values per channel are enough, and eval mode takes a single sample.
  CHECK_NOTHROW(run(bn1, {2, 3}));
  CHECK_NOTHROW(run(bn1, {1, 3, 2}));
  CHECK_NOTHROW(run(bn2, {1, 3, 1, 2}));
  bn1.eval();
  bn2.eval();
  CHECK_NOTHROW(run(bn1, {1, 3}));
  CHECK_NOTHROW(run(bn2, {1, 3, 1, 1}));
  // GroupNorm has no such restriction: a single sample is normalised over its group.
  CHECK_NOTHROW(run(gn, {1, 3, 1, 1}));
  // Wrong channel counts and ranks.
  CHECK_THROWS_AS(run(bn1, {2, 4}), Error);
  CHECK_THROWS_AS(run(bn1, {2, 3, 2, 2}), Error);
  CHECK_THROWS_AS(run(bn2, {2, 3, 4}), Error);
  CHECK_THROWS_AS(run(bn2, {2, 4, 2, 2}), Error);
  CHECK_THROWS_AS(run(gn, {2, 4, 2}), Error);
  CHECK_THROWS_AS(run(gn, {3}), Error);
  const std::string shape_msg = message(bn2, {2, 4, 2, 2});
  CHECK(shape_msg.find("BatchNorm2d 'enc.bn' expects [N, 3, H, W]") != std::string::npos);
  // C must be a multiple of G.
  ModelState<T, B> other;
  using GroupNormT = GroupNorm<T, B>;
  using BatchNorm1dT = BatchNorm1d<T, B>;
  CHECK_THROWS_AS(GroupNormT(other, "gn", {4, 6}), Error);
  CHECK_THROWS_AS(BatchNorm1dT(other, "bn", {0}), Error);
}

TEST_CASE_TEMPLATE("GroupNorm: forward values, names and construction init", T, float, double) {
  using B = DINO_TEST_BACKEND;
  using norm_test::download;
  using norm_test::upload;
  const Index n = 2, c = 4, g = 2, s = 3;
  const Shape shape{n, c, s};
  ModelState<T, B> state;
  GroupNorm<T, B> gn(state, "enc.layer1.0.bn1", {g, c});
  GroupNorm<T, B> plain(state, "plain", {1, c, 1e-5, false});
  state.finalize();
  Generator gen(21);
  gn.reset_parameters(gen);
  plain.reset_parameters(gen);
  REQUIRE(state.params.count() == 2);
  CHECK(state.params.entry(0).name == "enc.layer1.0.bn1.weight");
  CHECK(state.params.entry(1).name == "enc.layer1.0.bn1.bias");
  CHECK(state.buffers.count() == 0);
  CHECK(state.counters.empty());
  CHECK(download(state.params.value(gn.weight_id()), c) == std::vector<double>{1, 1, 1, 1});
  CHECK(download(state.params.value(gn.bias_id()), c) == std::vector<double>{0, 0, 0, 0});
  const std::vector<double> w = {0.5, -1.0, 2.0, 1.5}, b = {0.0, 0.25, -0.5, 1.0};
  upload<T>(state.params.value(gn.weight_id()), w);
  upload<T>(state.params.value(gn.bias_id()), b);
  auto xh = gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), 2.0, 1.5);
  auto x = Tensor<T, B>::from_host(shape, xh);
  Ctx<B> ctx;
  const double tol = norm_test::tolerance<T>();
  for (bool train : {true, false}) {
    CAPTURE(train);
    gn.train(train);
    plain.train(train);
    Tensor<T, B> y, yp;
    Saved<T, B> s1, s2;
    gn.forward(ctx, x, y, s1);
    plain.forward(ctx, x, yp, s2);
    const auto yh = download(y.data(), y.numel()), yph = download(yp.data(), yp.numel());
    for (Index i = 0; i < n; ++i) {
      // Groups of c / g channels for gn; the whole sample (G = 1, LayerNorm) for plain.
      for (Index groups : {g, Index(1)}) {
        const Index cg = c / groups, m = cg * s;
        for (Index q = 0; q < groups; ++q) {
          const std::size_t base = static_cast<std::size_t>((i * c + q * cg) * s);
          double mean = 0, var = 0;
          for (Index e = 0; e < m; ++e) mean += xh[base + static_cast<std::size_t>(e)];
          mean /= double(m);
          for (Index e = 0; e < m; ++e) {
            const double d = xh[base + static_cast<std::size_t>(e)] - mean;
            var += d * d;
          }
          var /= double(m);
          for (Index e = 0; e < m; ++e) {
            const std::size_t k = base + static_cast<std::size_t>(e);
            const auto ch = static_cast<std::size_t>(q * cg + e / s);
            const double xhat = (xh[k] - mean) / std::sqrt(var + 1e-5);
            if (groups == g)
              CHECK(yh[k] == doctest::Approx(w[ch] * xhat + b[ch]).epsilon(tol));
            else
              CHECK(yph[k] == doctest::Approx(xhat).epsilon(tol));
          }
        }
      }
    }
  }
}

}  // namespace dino::testing

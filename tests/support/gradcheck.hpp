// The gradient check every layer goes through, for any backend:
//  - central finite differences in double (PyTorch gradcheck's eps 1e-6, atol 1e-5, rtol 1e-3) of the input
//    and of every parameter, with the output projected on a fixed random cotangent;
//  - for float, the float analytic gradients against the double numerical ones (looser tolerances);
//  - the input gradient buffer is pre-filled with NaN, so an element backward never writes fails;
//  - accumulation: a second backward doubles every parameter gradient and rewrites the same dx;
//  - interleaving: two forwards, then both backwards in reverse order, give the separate results.
// Failures name the worst element: the parameter (or "input") and its flat index.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace dino::testing {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5, rtol = 1e-3;              // double against double FD (torch.autograd.gradcheck)
  double float_atol = 2e-4, float_rtol = 2e-3;  // float analytic against double FD
  bool train = true;                            // module mode during the check
  double param_std = 1.0;                       // parameters are redrawn N(0, param_std) unless 0
  double input_std = 1.0;
  std::uint64_t seed = 1234;
  // Called after parameters are set (e.g. positive running variances for eval mode); on the double state.
  std::function<void(ModelState<double, DINO_TEST_BACKEND>&)> adjust;
};

struct Worst {
  std::string where;
  Index index = -1;
  double analytic = 0, numeric = 0, excess = -1;
  void consider(const std::string& w, Index i, double a, double n, double atol, double rtol) {
    const double ex = std::isfinite(a) ? std::abs(a - n) - (atol + rtol * std::abs(n))
                                       : std::numeric_limits<double>::infinity();
    if (ex > excess) *this = {w, i, a, n, ex};
  }
  std::string str() const {
    return where + "[" + std::to_string(index) + "]: analytic " + std::to_string(analytic) + " vs numeric " +
           std::to_string(numeric);
  }
};

template <class T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// make(state) builds the module under test into a ModelState<S, B> for S = double and S = T.
template <class T, class Make>
void gradcheck(Make make, const Shape& in_shape, GradcheckOptions opt = {}) {
  using B = DINO_TEST_BACKEND;
  Ctx<B> ctx;
  // The double module: reference values and finite differences.
  ModelState<double, B> sd;
  auto md = make(sd);
  sd.finalize();
  Generator gen(opt.seed);
  md->reset_parameters(gen);
  const Index np = sd.params.numel();
  // Values representable in T, so that the float module computes the same function.
  auto round_t = [](std::vector<double> v) {
    for (auto& x : v) x = static_cast<double>(static_cast<T>(x));
    return v;
  };
  if (opt.param_std > 0 && np > 0) {
    auto p = round_t(gen.normal_vector<double>(static_cast<std::size_t>(np), 0.0, opt.param_std));
    B::copy_from_host(sd.params.values().data(), p.data(), np);
  }
  if (opt.adjust) opt.adjust(sd);
  md->train(opt.train);
  const auto x_host = round_t(gen.normal_vector<double>(static_cast<std::size_t>(in_shape.numel()), 0.0, opt.input_std));
  auto xd = Tensor<double, B>::from_host(in_shape, x_host);
  const Shape out_shape = md->output_shape(in_shape);
  const auto v_host = round_t(gen.normal_vector<double>(static_cast<std::size_t>(out_shape.numel()), 0.0, 1.0));
  auto vd = Tensor<double, B>::from_host(out_shape, v_host);

  // f(x, params) = <module(x), v>, evaluated in no-grad mode.
  Tensor<double, B> y;
  auto objective = [&]() {
    NoGrad<Ctx<B>> ng(ctx);
    Saved<double, B> s;
    md->forward(ctx, xd, y, s);
    const auto yh = y.to_host();
    double f = 0;
    for (std::size_t i = 0; i < yh.size(); ++i) f += yh[i] * v_host[i];
    return f;
  };
  auto perturb = [&](double* base, Index i, double delta) {
    double v;
    B::copy_to_host(&v, base + i, 1);
    v += delta;
    B::copy_from_host(base + i, &v, 1);
  };
  // Buffers (running stats) change in train mode; every evaluation starts from the same ones.
  const auto buffers0 = sd.buffers.values().to_host();
  auto restore = [&] {
    if (!buffers0.empty()) B::copy_from_host(sd.buffers.values().data(), buffers0.data(), sd.buffers.numel());
  };
  auto numeric = [&](double* base, Index i) {
    perturb(base, i, opt.eps);
    restore();
    const double fp = objective();
    perturb(base, i, -2 * opt.eps);
    restore();
    const double fm = objective();
    perturb(base, i, opt.eps);
    return (fp - fm) / (2 * opt.eps);
  };
  std::vector<double> num_dx(static_cast<std::size_t>(xd.numel()));
  for (Index i = 0; i < xd.numel(); ++i) num_dx[static_cast<std::size_t>(i)] = numeric(xd.data(), i);
  std::vector<double> num_dp(static_cast<std::size_t>(np));
  for (Index i = 0; i < np; ++i) num_dp[static_cast<std::size_t>(i)] = numeric(sd.params.values().data(), i);

  // The module in T with the same values.
  ModelState<T, B> st;
  auto mt = make(st);
  st.finalize();
  REQUIRE(st.params.numel() == np);
  REQUIRE(st.buffers.numel() == sd.buffers.numel());
  auto cast_copy = [](const Tensor<double, B>& from, Tensor<T, B>& to) {
    const auto h = from.to_host();
    const std::vector<T> c(h.begin(), h.end());
    if (!c.empty()) B::copy_from_host(to.data(), c.data(), static_cast<Index>(c.size()));
  };
  restore();
  cast_copy(sd.buffers.values(), st.buffers.values());
  cast_copy(sd.params.values(), st.params.values());
  mt->train(opt.train);
  std::vector<T> xt_host(x_host.begin(), x_host.end()), vt_host(v_host.begin(), v_host.end());
  auto x = Tensor<T, B>::from_host(in_shape, xt_host);
  auto v = Tensor<T, B>::from_host(out_shape, vt_host);

  const bool is_double = std::is_same_v<T, double>;
  const double atol = is_double ? opt.atol : opt.float_atol;
  const double rtol = is_double ? opt.rtol : opt.float_rtol;
  const T nan = std::numeric_limits<T>::quiet_NaN();

  // One forward, one backward.
  Tensor<T, B> yt, dx;
  Saved<T, B> saved;
  mt->forward(ctx, x, yt, saved);
  REQUIRE(yt.shape() == out_shape);
  dx.resize(in_shape);
  dx.fill(nan);
  st.params.zero_grad();
  mt->backward(ctx, v, dx, saved);
  REQUIRE(dx.shape() == in_shape);
  const auto dx1 = to_double(dx.to_host());
  const auto dp1 = to_double(st.params.grads().to_host());

  Worst worst;
  for (std::size_t i = 0; i < dx1.size(); ++i)
    worst.consider("input", static_cast<Index>(i), dx1[i], num_dx[i], atol, rtol);
  for (const auto& e : st.params.entries())
    for (Index i = 0; i < e.shape.numel(); ++i) {
      const auto k = static_cast<std::size_t>(e.offset + i);
      worst.consider(e.name, i, dp1[k], num_dp[k], atol, rtol);
    }
  INFO("worst gradient element: ", worst.str());
  CHECK(worst.excess <= 0);

  // Accumulation: the same backward again adds the same gradient; dx is rewritten, not added to.
  dx.fill(nan);
  mt->backward(ctx, v, dx, saved);
  const auto dx2 = to_double(dx.to_host());
  const auto dp2 = to_double(st.params.grads().to_host());
  Worst acc;
  for (std::size_t i = 0; i < dx2.size(); ++i) acc.consider("input (second backward)", static_cast<Index>(i), dx2[i], dx1[i], 0, 1e-12);
  for (const auto& e : st.params.entries())
    for (Index i = 0; i < e.shape.numel(); ++i) {
      const auto k = static_cast<std::size_t>(e.offset + i);
      acc.consider(e.name + " (accumulated)", i, dp2[k], 2 * dp1[k], 0, is_double ? 1e-12 : 1e-5);
    }
  INFO("worst accumulation element: ", acc.str());
  CHECK(acc.excess <= 0);

  // Interleaving: forward x, forward x2, backward x2, backward x equals the two passes done separately.
  const auto x2_host = gen.normal_vector<T>(static_cast<std::size_t>(in_shape.numel()), 0.0, opt.input_std);
  auto x2 = Tensor<T, B>::from_host(in_shape, x2_host);
  Tensor<T, B> y2, dx2b;
  Saved<T, B> s2;
  st.params.zero_grad();
  mt->forward(ctx, x2, y2, s2);
  mt->backward(ctx, v, dx2b, s2);
  const auto alone2 = to_double(st.params.grads().to_host());
  const auto dx_alone2 = to_double(dx2b.to_host());
  st.params.zero_grad();
  Saved<T, B> sa, sb;
  Tensor<T, B> ya, yb, dxa, dxb;
  mt->forward(ctx, x, ya, sa);
  mt->forward(ctx, x2, yb, sb);
  mt->backward(ctx, v, dxb, sb);
  mt->backward(ctx, v, dxa, sa);
  const auto both = to_double(st.params.grads().to_host());
  // Train-mode BatchNorm updates its running stats in every forward; the outputs must not depend on them.
  Worst inter;
  const auto dxa_h = to_double(dxa.to_host()), dxb_h = to_double(dxb.to_host());
  const double tol = is_double ? 1e-12 : 1e-5;
  for (std::size_t i = 0; i < dxa_h.size(); ++i) {
    inter.consider("input (interleaved, first)", static_cast<Index>(i), dxa_h[i], dx1[i], tol, tol);
    inter.consider("input (interleaved, second)", static_cast<Index>(i), dxb_h[i], dx_alone2[i], tol, tol);
  }
  for (std::size_t k = 0; k < both.size(); ++k)
    inter.consider("parameters (interleaved)", static_cast<Index>(k), both[k], dp1[k] + alone2[k], tol, tol);
  INFO("worst interleaving element: ", inter.str());
  CHECK(inter.excess <= 0);
}

}  // namespace dino::testing

// Gradient checks and hand-computed values of Conv2d, MaxPool2d, AvgPool2d and AdaptiveAvgPool2d, a batched
// Conv2d against a direct reference, and the option checks. One body for every backend: the including file
// defines DINO_TEST_BACKEND.
#pragma once
#include "../support/gradcheck.hpp"

namespace dino::testing {

namespace conv_test {

template <class S, class B>
using ConvOpt = typename Conv2d<S, B>::Options;

// Conv2d options in one line: in, out, kernel, stride, padding, same, bias.
inline auto conv_options(Index in, Index out, Index kh, Index kw, Index sh, Index sw, Index ph, Index pw, bool same,
                         bool bias) {
  return [=](auto& o) {
    o.in_channels = in;
    o.out_channels = out;
    o.kernel_h = kh;
    o.kernel_w = kw;
    o.stride_h = sh;
    o.stride_w = sw;
    o.pad_h = ph;
    o.pad_w = pw;
    o.same = same;
    o.bias = bias;
  };
}

// Runs module m on x (host values) and returns y on the host.
template <class T, class B>
std::vector<T> run(Module<T, B>& m, const Shape& shape, const std::vector<T>& x) {
  Ctx<B> ctx;
  auto xt = Tensor<T, B>::from_host(shape, x);
  Tensor<T, B> y;
  Saved<T, B> saved;
  m.forward(ctx, xt, y, saved);
  return y.to_host();
}

}  // namespace conv_test

TEST_CASE_TEMPLATE("Conv2d: gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  struct Case {
    const char* what;
    Shape in;
    Index c_out, kh, kw, sh, sw, ph, pw;
    bool same;
  };
  const Case cases[] = {
      {"3x2 kernel, stride (2, 1), padding (1, 0), H != W", {2, 2, 7, 5}, 3, 3, 2, 2, 1, 1, 0, false},
      {"'same', odd kernel", {2, 2, 5, 6}, 3, 3, 3, 1, 1, 0, 0, true},
      {"'same', even kernels (4x2: padding 1 top, 2 bottom, 0 left, 1 right)", {1, 2, 5, 4}, 2, 4, 2, 1, 1, 0, 0, true},
      {"1x1, stride 1 (no im2col)", {2, 3, 4, 5}, 4, 1, 1, 1, 1, 0, 0, false},
      {"1x1, stride 2", {2, 3, 5, 4}, 2, 1, 1, 2, 2, 0, 0, false},
      {"3x3, stride 2, padding 1", {3, 2, 6, 7}, 2, 3, 3, 2, 2, 1, 1, false},
      {"kernel as large as the padded input", {1, 1, 3, 2}, 2, 5, 2, 1, 1, 1, 0, false},
  };
  for (const Case& c : cases)
    for (bool bias : {true, false}) {
      CAPTURE(c.what);
      CAPTURE(bias);
      gradcheck<T>(
          [&](auto& s) {
            using S = typename std::decay_t<decltype(s)>::scalar;
            conv_test::ConvOpt<S, B> o;
            conv_test::conv_options(c.in[1], c.c_out, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.same, bias)(o);
            return std::make_unique<Conv2d<S, B>>(s, "conv", o);
          },
          c.in);
    }
}

TEST_CASE_TEMPLATE("Conv2d: registration, init bounds and hand-computed values", T, float, double) {
  using B = DINO_TEST_BACKEND;
  ModelState<T, B> state;
  conv_test::ConvOpt<T, B> o;
  conv_test::conv_options(1, 1, 2, 2, 1, 1, 0, 0, false, true)(o);
  Conv2d<T, B> conv(state, "enc.conv1", o);
  conv_test::conv_options(1, 1, 2, 2, 1, 1, 0, 0, true, true)(o);
  Conv2d<T, B> same(state, "enc.same", o);
  conv_test::conv_options(3, 5, 3, 3, 1, 1, 1, 1, false, false)(o);
  Conv2d<T, B> big(state, "enc.big", o);
  state.finalize();
  CHECK(state.params.entry(conv.weight_id()).name == "enc.conv1.weight");
  CHECK(state.params.entry(conv.weight_id()).shape == Shape{1, 1, 2, 2});
  CHECK(state.params.entry(conv.bias_id()).name == "enc.conv1.bias");
  CHECK(big.bias_id() == -1);
  CHECK(state.params.entry(big.weight_id()).shape == Shape{5, 3, 3, 3});

  // torch's default init: U(+-1/sqrt(fan_in)), fan_in = 27.
  Generator gen(3);
  big.reset_parameters(gen);
  std::vector<T> wb(135);
  B::copy_to_host(wb.data(), state.params.value(big.weight_id()), 135);
  double lo = 1, hi = -1;
  for (T v : wb) {
    lo = std::min(lo, double(v));
    hi = std::max(hi, double(v));
  }
  const double bound = 1.0 / std::sqrt(27.0);
  CHECK(lo >= -bound);
  CHECK(hi <= bound);
  CHECK(hi - lo > bound);  // spread over the range, not a constant

  // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], w = [[1, 2], [3, 4]], b = 0.5.
  const std::vector<T> x{1, 2, 3, 4, 5, 6, 7, 8, 9}, k{1, 2, 3, 4}, b{T(0.5)};
  for (auto* m : {&conv, &same}) {
    B::copy_from_host(state.params.value(m->weight_id()), k.data(), 4);
    B::copy_from_host(state.params.value(m->bias_id()), b.data(), 1);
  }
  CHECK(conv.output_shape({1, 1, 3, 3}) == Shape{1, 1, 2, 2});
  const auto y = conv_test::run(conv, {1, 1, 3, 3}, x);
  CHECK(y == std::vector<T>{37.5, 47.5, 67.5, 77.5});
  // 'same' with a 2x2 kernel pads 0 on the top/left and 1 on the bottom/right, as torch.
  CHECK(same.output_shape({1, 1, 3, 3}) == Shape{1, 1, 3, 3});
  const auto ys = conv_test::run(same, {1, 1, 3, 3}, x);
  CHECK(ys == std::vector<T>{37.5, 47.5, 21.5, 67.5, 77.5, 33.5, 23.5, 26.5, 9.5});
}

// Direct loops in double: y = conv(x, w) + b, and the gradients for a cotangent dy.
struct ConvReference {
  std::vector<double> y, dx, dw, db;
  ConvReference(const math::Window2d& g, Index c_out, const std::vector<double>& x, const std::vector<double>& w,
                const std::vector<double>& b, const std::vector<double>& dy) {
    y.assign(static_cast<std::size_t>(g.n * c_out * g.oh * g.ow), 0.0);
    dx.assign(x.size(), 0.0);
    dw.assign(w.size(), 0.0);
    db.assign(b.size(), 0.0);
    for (Index n = 0; n < g.n; ++n)
      for (Index co = 0; co < c_out; ++co)
        for (Index oy = 0; oy < g.oh; ++oy)
          for (Index ox = 0; ox < g.ow; ++ox) {
            const auto yi = static_cast<std::size_t>(((n * c_out + co) * g.oh + oy) * g.ow + ox);
            double s = b.empty() ? 0.0 : b[static_cast<std::size_t>(co)];
            const double d = dy[yi];
            if (!b.empty()) db[static_cast<std::size_t>(co)] += d;
            for (Index ci = 0; ci < g.c; ++ci)
              for (Index i = 0; i < g.kh; ++i)
                for (Index j = 0; j < g.kw; ++j) {
                  const Index iy = oy * g.sh + i - g.ph, ix = ox * g.sw + j - g.pw;
                  if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                  const auto xi = static_cast<std::size_t>(((n * g.c + ci) * g.h + iy) * g.w + ix);
                  const auto wi = static_cast<std::size_t>(((co * g.c + ci) * g.kh + i) * g.kw + j);
                  s += x[xi] * w[wi];
                  dx[xi] += d * w[wi];
                  dw[wi] += d * x[xi];
                }
            y[yi] = s;
          }
  }
};

template <class T>
void check_close(const char* what, const std::vector<T>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  Worst worst;
  for (std::size_t i = 0; i < got.size(); ++i)
    worst.consider(what, static_cast<Index>(i), double(got[i]), want[i], tol, tol);
  INFO("worst element: ", worst.str());
  CHECK(worst.excess <= 0);
}

// Batches large enough for several im2col chunks and weight-gradient partial sums.
TEST_CASE_TEMPLATE("Conv2d: batched forward and backward match direct loops", T, float, double) {
  using B = DINO_TEST_BACKEND;
  struct Case {
    Shape in;
    Index c_out, k, s, p;
    bool same, bias;
  };
  const Case cases[] = {
      {{37, 8, 16, 15}, 6, 3, 1, 1, false, true},
      {{21, 6, 13, 17}, 5, 3, 2, 1, false, false},
      {{9, 12, 20, 20}, 4, 1, 1, 0, false, true},
      {{19, 16, 18, 18}, 3, 1, 2, 0, false, false},
      {{12, 5, 14, 14}, 7, 4, 1, 0, true, true},
      // Larger images: the CPU backend splits these batches into several chunks of images, and the last
      // into more chunks than it keeps partial weight gradients (16), so that some sums span chunks.
      {{12, 16, 32, 32}, 4, 3, 1, 1, false, true},
      {{10, 24, 30, 30}, 5, 3, 2, 1, false, true},
      {{40, 32, 32, 32}, 2, 3, 1, 1, false, true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.in.str());
    CAPTURE(c.k);
    ModelState<T, B> state;
    conv_test::ConvOpt<T, B> o;
    conv_test::conv_options(c.in[1], c.c_out, c.k, c.k, c.s, c.s, c.p, c.p, c.same, c.bias)(o);
    Conv2d<T, B> conv(state, "conv", o);
    state.finalize();
    Generator gen(11);
    conv.reset_parameters(gen);
    const Shape out = conv.output_shape(c.in);
    const auto xh = gen.normal_vector<T>(static_cast<std::size_t>(c.in.numel()), 0.0, 1.0);
    const auto dyh = gen.normal_vector<T>(static_cast<std::size_t>(out.numel()), 0.0, 1.0);
    const Index nw = c.c_out * c.in[1] * c.k * c.k;
    std::vector<T> wh(static_cast<std::size_t>(nw)), bh(static_cast<std::size_t>(c.bias ? c.c_out : 0));
    B::copy_to_host(wh.data(), state.params.value(conv.weight_id()), nw);
    if (c.bias) B::copy_to_host(bh.data(), state.params.value(conv.bias_id()), c.c_out);

    math::Window2d g;
    g.n = c.in[0];
    g.c = c.in[1];
    g.h = c.in[2];
    g.w = c.in[3];
    g.kh = g.kw = c.k;
    g.sh = g.sw = c.s;
    g.ph = g.pw = c.same ? (c.k - 1) / 2 : c.p;
    g.oh = out[2];
    g.ow = out[3];
    const ConvReference ref(g, c.c_out, to_double(xh), to_double(wh), to_double(bh), to_double(dyh));

    Ctx<B> ctx;
    auto x = Tensor<T, B>::from_host(c.in, xh);
    auto dy = Tensor<T, B>::from_host(out, dyh);
    Tensor<T, B> y, dx;
    Saved<T, B> saved;
    conv.forward(ctx, x, y, saved);
    conv.backward(ctx, dy, dx, saved);
    const double tol = std::is_same_v<T, double> ? 1e-10 : 2e-4;
    check_close("y", y.to_host(), ref.y, tol);
    check_close("dx", dx.to_host(), ref.dx, tol);
    std::vector<T> dwh(static_cast<std::size_t>(nw)), dbh(bh.size());
    B::copy_to_host(dwh.data(), state.params.grad(conv.weight_id()), nw);
    // The weight gradient sums over the whole batch.
    check_close("dweight", dwh, ref.dw, std::is_same_v<T, double> ? 1e-9 : 2e-3);
    if (c.bias) {
      B::copy_to_host(dbh.data(), state.params.grad(conv.bias_id()), c.c_out);
      check_close("dbias", dbh, ref.db, std::is_same_v<T, double> ? 1e-9 : 2e-3);
    }
  }
}

TEST_CASE_TEMPLATE("Pooling: gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  struct PoolCase {
    Index k, s, p;
    Shape in;
  };
  // Stride != kernel (overlapping windows, and gaps), with and without padding, non-square inputs.
  const PoolCase cases[] = {{3, 2, 1, {2, 3, 7, 6}}, {2, 1, 0, {1, 2, 4, 5}}, {2, 3, 1, {2, 2, 6, 7}},
                            {2, 2, 0, {2, 2, 6, 4}}};
  for (const PoolCase& c : cases) {
    CAPTURE(c.k);
    CAPTURE(c.s);
    CAPTURE(c.p);
    gradcheck<T>(
        [&](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          (void)s;
          return std::make_unique<MaxPool2d<S, B>>("pool", typename MaxPool2d<S, B>::Options{c.k, c.s, c.p});
        },
        c.in);
    for (bool include_pad : {true, false}) {
      CAPTURE(include_pad);
      gradcheck<T>(
          [&](auto& s) {
            using S = typename std::decay_t<decltype(s)>::scalar;
            (void)s;
            return std::make_unique<AvgPool2d<S, B>>("pool",
                                                     typename AvgPool2d<S, B>::Options{c.k, c.s, c.p, include_pad});
          },
          c.in);
    }
  }
  // Output sizes that do not divide the input, a global pool, and more bins than pixels.
  struct AdaptiveCase {
    Shape in;
    Index oh, ow;
  };
  const AdaptiveCase adaptive[] = {
      {{2, 3, 7, 5}, 3, 2}, {{1, 2, 5, 5}, 2, 2}, {{2, 3, 4, 3}, 1, 1}, {{1, 2, 3, 2}, 5, 4}};
  for (const AdaptiveCase& c : adaptive) {
    CAPTURE(c.in.str());
    CAPTURE(c.oh);
    CAPTURE(c.ow);
    gradcheck<T>(
        [&](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          (void)s;
          return std::make_unique<AdaptiveAvgPool2d<S, B>>("pool", c.oh, c.ow);
        },
        c.in);
  }
}

TEST_CASE_TEMPLATE("Pooling: hand-computed values and max routing", T, float, double) {
  using B = DINO_TEST_BACKEND;
  const std::vector<T> x{1, 2, 3, 4, 5, 6, 7, 8, 9};
  const Shape s{1, 1, 3, 3};
  MaxPool2d<T, B> max2("max", {2, 1, 0});
  CHECK(conv_test::run(max2, s, x) == std::vector<T>{5, 6, 8, 9});
  // Windows of rows/columns [-1, 1) and [1, 3).
  MaxPool2d<T, B> max_pad("max", {2, 2, 1});
  CHECK(max_pad.output_shape(s) == Shape{1, 1, 2, 2});
  CHECK(conv_test::run(max_pad, s, x) == std::vector<T>{1, 3, 7, 9});
  // The padding is -inf, not 0: an all-negative input keeps its values.
  MaxPool2d<T, B> max3("max", {3, 1, 1});
  CHECK(conv_test::run(max3, {1, 1, 2, 2}, std::vector<T>{-4, -3, -2, -1}) == std::vector<T>{-1, -1, -1, -1});

  AvgPool2d<T, B> avg_in("avg", {3, 1, 1, true}), avg_ex("avg", {3, 1, 1, false});
  const auto yi = conv_test::run(avg_in, s, x), ye = conv_test::run(avg_ex, s, x);
  REQUIRE(yi.size() == 9);
  CHECK(yi[0] == doctest::Approx(12.0 / 9));
  CHECK(yi[4] == doctest::Approx(5.0));
  CHECK(yi[5] == doctest::Approx(33.0 / 9));
  CHECK(ye[0] == doctest::Approx(3.0));
  CHECK(ye[1] == doctest::Approx(21.0 / 6));
  CHECK(ye[4] == doctest::Approx(5.0));

  // Bins [0, 2) and [1, 3) of a 3-pixel side.
  AdaptiveAvgPool2d<T, B> ad("ad", 2, 2);
  CHECK(conv_test::run(ad, s, x) == std::vector<T>{3, 4, 6, 7});
  AdaptiveAvgPool2d<T, B> ad72("ad", 3, 2);
  const std::vector<T> col{0, 1, 2, 3, 4, 5, 6};  // [1, 1, 7, 1]: bins [0, 3), [2, 5), [4, 7)
  CHECK(conv_test::run(ad72, {1, 1, 7, 1}, col) == std::vector<T>{1, 1, 3, 3, 5, 5});

  // Ties: the gradient goes to the first maximum in scan order, once per window.
  Ctx<B> ctx;
  MaxPool2d<T, B> tie("max", {2, 1, 0});
  auto xt = Tensor<T, B>::from_host({1, 1, 2, 3}, std::vector<T>{7, 7, 7, 7, 7, 7});
  Tensor<T, B> y, dx;
  Saved<T, B> saved;
  tie.forward(ctx, xt, y, saved);
  auto dy = Tensor<T, B>::from_host({1, 1, 1, 2}, std::vector<T>{1, 10});
  tie.backward(ctx, dy, dx, saved);
  CHECK(dx.to_host() == std::vector<T>{1, 10, 0, 0, 0, 0});
}

TEST_CASE_TEMPLATE("Conv2d and pooling: bad options and shapes throw dino::Error", T, float, double) {
  using B = DINO_TEST_BACKEND;
  ModelState<T, B> state;
  auto make = [&](Index in, Index out, Index k, Index st, Index p, bool same) {
    conv_test::ConvOpt<T, B> o;
    conv_test::conv_options(in, out, k, k, st, st, p, p, same, true)(o);
    return std::make_unique<Conv2d<T, B>>(state, "c" + std::to_string(state.params.count()), o);
  };
  CHECK_THROWS_AS(make(0, 4, 3, 1, 0, false), Error);
  CHECK_THROWS_AS(make(3, 0, 3, 1, 0, false), Error);
  CHECK_THROWS_AS(make(3, 4, 0, 1, 0, false), Error);
  CHECK_THROWS_AS(make(3, 4, 3, 0, 0, false), Error);
  CHECK_THROWS_AS(make(3, 4, 3, 1, -1, false), Error);
  CHECK_THROWS_AS(make(3, 4, 3, 2, 0, true), Error);  // 'same' with stride 2
  CHECK_THROWS_AS(make(3, 4, 3, 1, 1, true), Error);  // 'same' and explicit padding
  CHECK_THROWS_WITH_AS(make(3, 4, 3, 2, 0, true), doctest::Contains("'c0'"), Error);
  auto conv = make(3, 4, 3, 1, 0, false);
  CHECK_THROWS_AS(conv->output_shape({2, 4, 8, 8}), Error);  // channel mismatch
  CHECK_THROWS_AS(conv->output_shape({3, 8, 8}), Error);     // rank 3
  CHECK_THROWS_AS(conv->output_shape({1, 3, 2, 8}), Error);  // kernel larger than the input
  CHECK_THROWS_AS(conv->output_shape({1, 3, 0, 8}), Error);
  CHECK(conv->output_shape({1, 3, 3, 8}) == Shape{1, 4, 1, 6});
  auto padded = make(3, 4, 5, 1, 1, false);
  CHECK_THROWS_AS(padded->output_shape({1, 3, 2, 8}), Error);  // 2 + 2 < 5
  CHECK(padded->output_shape({1, 3, 3, 8}) == Shape{1, 4, 1, 6});
  {
    state.finalize();
    Ctx<B> ctx;
    auto x = Tensor<T, B>::from_host({1, 2, 4, 4}, std::vector<T>(32, T(1)));
    Tensor<T, B> y;
    Saved<T, B> saved;
    CHECK_THROWS_WITH_AS(conv->forward(ctx, x, y, saved), doctest::Contains("input channels"), Error);
    // backward without a forward in grad mode
    Tensor<T, B> dy, dx;
    CHECK_THROWS_AS(conv->backward(ctx, dy, dx, saved), Error);
  }

  using MaxO = typename MaxPool2d<T, B>::Options;
  using AvgO = typename AvgPool2d<T, B>::Options;
  CHECK_THROWS_AS((MaxPool2d<T, B>("m", MaxO{0, 1, 0})), Error);
  CHECK_THROWS_AS((MaxPool2d<T, B>("m", MaxO{2, -1, 0})), Error);
  CHECK_THROWS_AS((MaxPool2d<T, B>("m", MaxO{3, 1, 2})), Error);  // padding > kernel / 2
  CHECK_THROWS_AS((MaxPool2d<T, B>("m", MaxO{2, 2, -1})), Error);
  CHECK_THROWS_AS((AvgPool2d<T, B>("a", AvgO{2, 1, 2, true})), Error);
  CHECK_THROWS_WITH_AS((AvgPool2d<T, B>("enc.pool", AvgO{3, 1, 2, true})), doctest::Contains("'enc.pool'"), Error);
  MaxPool2d<T, B> mp("m", MaxO{3, 0, 0});
  CHECK(mp.options().stride == 3);
  CHECK_THROWS_AS(mp.output_shape({1, 1, 2, 5}), Error);  // window larger than the input
  CHECK_THROWS_AS(mp.output_shape({1, 5, 5}), Error);
  CHECK(mp.output_shape({1, 1, 3, 8}) == Shape{1, 1, 1, 2});
  AvgPool2d<T, B> ap("a", AvgO{3, 2, 1, false});
  CHECK(ap.output_shape({2, 3, 7, 6}) == Shape{2, 3, 4, 3});
  CHECK_THROWS_AS(ap.output_shape({2, 3, 7}), Error);
  CHECK_THROWS_AS((AdaptiveAvgPool2d<T, B>("p", 0, 2)), Error);
  AdaptiveAvgPool2d<T, B> ad("p", 2, 2);
  CHECK_THROWS_AS(ad.output_shape({1, 3, 0, 4}), Error);
  CHECK_THROWS_AS(ad.output_shape({3, 4, 4}), Error);
  CHECK(ad.output_shape({4, 3, 1, 9}) == Shape{4, 3, 2, 2});
}

}  // namespace dino::testing

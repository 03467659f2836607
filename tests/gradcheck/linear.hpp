// Gradient checks of Linear (with and without bias, with weight normalisation) and of the containers.
// One body for every backend: the including file defines DINO_TEST_BACKEND.
#pragma once
#include "../support/gradcheck.hpp"

namespace dino::testing {

TEST_CASE_TEMPLATE("Linear: gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  for (bool bias : {true, false})
    for (bool wn : {false, true}) {
      CAPTURE(bias);
      CAPTURE(wn);
      gradcheck<T>(
          [&](auto& s) {
            using S = typename std::decay_t<decltype(s)>::scalar;
            return std::make_unique<Linear<S, B>>(s, "lin", typename Linear<S, B>::Options{5, 3, bias, wn});
          },
          Shape{4, 5});
    }
  // Leading dimensions are flattened, as torch applies Linear to the last dimension.
  gradcheck<T>(
      [&](auto& s) {
        using S = typename std::decay_t<decltype(s)>::scalar;
        return std::make_unique<Linear<S, B>>(s, "lin", typename Linear<S, B>::Options{4, 6, true, false});
      },
      Shape{2, 3, 4});
}

TEST_CASE_TEMPLATE("ReLU and GELU: gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  gradcheck<T>([](auto& s) {
    using S = typename std::decay_t<decltype(s)>::scalar;
    (void)s;
    return std::make_unique<ReLU<S, B>>("relu");
  }, Shape{3, 7});
  gradcheck<T>([](auto& s) {
    using S = typename std::decay_t<decltype(s)>::scalar;
    (void)s;
    return std::make_unique<GELU<S, B>>("gelu");
  }, Shape{3, 7}, [] { GradcheckOptions o; o.input_std = 2.0; return o; }());
}

TEST_CASE_TEMPLATE("L2Normalize: gradients (fn) and the detached denominator (fnd)", T, float, double) {
  using B = DINO_TEST_BACKEND;
  gradcheck<T>([&](auto& s) {
    using S = typename std::decay_t<decltype(s)>::scalar;
    (void)s;
    return std::make_unique<L2Normalize<S, B>>("fn", false);
  }, Shape{2, 3, 5});
  // fnd is deliberately not the true gradient: dx = dy / max(||x||, eps), the norm held constant.
  Ctx<B> ctx;
  L2Normalize<T, B> fnd("fnd", true);
  Generator gen(7);
  const auto xh = gen.normal_vector<T>(12, 0.0, 1.0), dyh = gen.normal_vector<T>(12, 0.0, 1.0);
  auto x = Tensor<T, B>::from_host({3, 4}, xh);
  auto dy = Tensor<T, B>::from_host({3, 4}, dyh);
  Tensor<T, B> y, dx;
  Saved<T, B> saved;
  fnd.forward(ctx, x, y, saved);
  fnd.backward(ctx, dy, dx, saved);
  const auto dxh = dx.to_host(), yh = y.to_host();
  for (int r = 0; r < 3; ++r) {
    double n = 0;
    for (int j = 0; j < 4; ++j) n += double(xh[r * 4 + j]) * xh[r * 4 + j];
    n = std::sqrt(n);
    for (int j = 0; j < 4; ++j) {
      CHECK(yh[r * 4 + j] == doctest::Approx(xh[r * 4 + j] / n).epsilon(1e-6));
      CHECK(dxh[r * 4 + j] == doctest::Approx(dyh[r * 4 + j] / n).epsilon(1e-6));
    }
  }
}

TEST_CASE_TEMPLATE("Identity, Flatten, Sequential and Residual: gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  gradcheck<T>([](auto& s) {
    using S = typename std::decay_t<decltype(s)>::scalar;
    (void)s;
    return std::make_unique<Identity<S, B>>("id");
  }, Shape{2, 3});
  gradcheck<T>([](auto& s) {
    using S = typename std::decay_t<decltype(s)>::scalar;
    (void)s;
    return std::make_unique<Flatten<S, B>>("flat");
  }, Shape{2, 3, 2, 2});
  // An MLP: Linear -> GELU -> Linear -> ReLU.
  gradcheck<T>([](auto& s) {
    using S = typename std::decay_t<decltype(s)>::scalar;
    auto seq = std::make_unique<Sequential<S, B>>("mlp");
    seq->template emplace<Linear<S, B>>(s, seq->next_name(), typename Linear<S, B>::Options{4, 6, true, false});
    seq->template emplace<GELU<S, B>>(seq->next_name());
    seq->template emplace<Linear<S, B>>(s, seq->next_name(), typename Linear<S, B>::Options{6, 3, true, true});
    seq->template emplace<ReLU<S, B>>(seq->next_name());
    return seq;
  }, Shape{5, 4});
  // Residual with a projection shortcut and with the identity.
  for (bool projection : {true, false}) {
    CAPTURE(projection);
    gradcheck<T>([&](auto& s) {
      using S = typename std::decay_t<decltype(s)>::scalar;
      auto main = std::make_unique<Sequential<S, B>>("block.main");
      main->template emplace<Linear<S, B>>(s, main->next_name(), typename Linear<S, B>::Options{4, 4, true, false});
      main->template emplace<GELU<S, B>>(main->next_name());
      std::unique_ptr<Module<S, B>> shortcut;
      if (projection)
        shortcut = std::make_unique<Linear<S, B>>(s, "block.shortcut", typename Linear<S, B>::Options{4, 4, false, false});
      return std::make_unique<Residual<S, B>>("block", std::move(main), std::move(shortcut));
    }, Shape{3, 4});
  }
}

}  // namespace dino::testing

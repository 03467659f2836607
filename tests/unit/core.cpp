// Unit tests of the core: shapes, tensors, named stores, the counter-based generator and per-element rules.
#include <doctest/doctest.h>

#include <cmath>
#include <dino/cpu.hpp>
#include <numeric>

using namespace dino;

TEST_CASE("Shape: sizes, negative indices and validation") {
  const Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s.size(-1) == 4);
  CHECK(s.str() == "[2, 3, 4]");
  CHECK_THROWS_AS(s.size(3), Error);
  CHECK_THROWS_AS((Shape{1, -2}), Error);
  CHECK_THROWS_AS((Shape{1, 1, 1, 1, 1, 1, 1}), Error);
  CHECK(Shape{}.numel() == 1);
}

TEST_CASE("Tensor: host round trip, resize keeps capacity, moves") {
  auto t = Tensor<float, Cpu>::from_host({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.to_host() == std::vector<float>{1, 2, 3, 4, 5, 6});
  const float* p = t.data();
  t.resize({3, 2});
  CHECK(t.data() == p);  // shrinking or same size never reallocates
  t.resize({1, 4});
  CHECK(t.data() == p);
  CHECK_THROWS_AS(t.reshape({5}), Error);
  Tensor<float, Cpu> u = std::move(t);
  CHECK(u.data() == p);
  CHECK(t.data() == nullptr);
  auto c = u.clone();
  CHECK(c.data() != u.data());
  CHECK_THROWS_AS((Tensor<double, Cpu>::from_host({2, 2}, {1, 2, 3})), Error);
}

TEST_CASE("NamedStore: registration order, finalize, errors") {
  ModelState<double, Cpu> s;
  const Index a = s.params.add("enc.weight", {2, 3});
  const Index b = s.params.add("enc.bias", {2});
  CHECK_THROWS_AS(s.params.add("enc.bias", {2}), Error);
  CHECK_THROWS_AS(s.params.value(a), Error);  // before finalize
  s.finalize();
  CHECK_THROWS_AS(s.params.add("late", {1}), Error);
  CHECK(s.params.numel() == 8);
  CHECK(s.params.value(b) - s.params.value(a) == 6);
  CHECK(s.params.entry(b).name == "enc.bias");
  CHECK(s.params.find("enc.weight") == a);
  CHECK(s.params.find("nope") == -1);
  CHECK_THROWS_AS(s.buffers.grad(0), Error);
  s.params.grads().fill(3.0);
  s.params.zero_grad();
  for (double g : s.params.grads().to_host()) CHECK(g == 0.0);
  const Index c = s.add_counter("bn.num_batches_tracked");
  s.counter(c) += 2;
  CHECK(s.counters[0].second == 2);
  CHECK_THROWS_AS(s.add_counter("bn.num_batches_tracked"), Error);
}

TEST_CASE("Generator: pure function of (seed, purpose, epoch, index) and sound distributions") {
  Generator a(42, 1, 2, 3), b(42, 1, 2, 3), c(42, 1, 2, 4), d(43, 1, 2, 3);
  const auto va = a.uniform_vector<double>(100, 0, 1);
  CHECK(va == b.uniform_vector<double>(100, 0, 1));
  CHECK(va != c.uniform_vector<double>(100, 0, 1));
  CHECK(va != d.uniform_vector<double>(100, 0, 1));
  Generator g(7);
  const int n = 200000;
  double s = 0, s2 = 0, us = 0;
  std::vector<int> hist(5, 0);
  int out_of_range = 0;
  for (int i = 0; i < n; ++i) {
    const double z = g.normal();
    s += z;
    s2 += z * z;
    const double u = g.uniform();
    out_of_range += !(u >= 0.0 && u < 1.0);
    us += u;
    ++hist[g.below(5)];
  }
  CHECK(out_of_range == 0);
  // Standard errors: mean 1/sqrt(n) ~ 0.0022; variance ~ 0.0032. Bounds at about 5 standard errors.
  CHECK(std::abs(s / n) < 0.012);
  CHECK(std::abs(s2 / n - 1) < 0.016);
  CHECK(std::abs(us / n - 0.5) < 0.004);
  for (int h : hist) CHECK(std::abs(h - n / 5) < 1000);
}

TEST_CASE("math: GELU and its derivative") {
  // Values of x * Phi(x) from the standard normal CDF.
  CHECK(math::gelu(0.0) == 0.0);
  CHECK(math::gelu(1.0) == doctest::Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(math::gelu(-1.0) == doctest::Approx(-0.15865525393145707).epsilon(1e-14));
  CHECK(math::gelu(3.0f) == doctest::Approx(2.9959502f).epsilon(1e-6));
  for (double x : {-3.0, -0.7, 0.0, 0.4, 2.5}) {
    const double h = 1e-6;
    const double fd = (math::gelu(x + h) - math::gelu(x - h)) / (2 * h);
    CHECK(math::gelu_grad(x) == doctest::Approx(fd).epsilon(1e-8));
  }
  CHECK(math::relu_grad(0.0, 5.0) == 0.0);  // torch: zero gradient at 0
  CHECK(math::ema(1.0, 3.0, 0.75) == doctest::Approx(1.5));
}

TEST_CASE_TEMPLATE("Cpu::gemm: every transpose combination and strided operands against a naive product", T, float,
                   double) {
  Ctx<Cpu> ctx;
  Generator g(3);
  const Index m = 7, n = 5, k = 9, pad = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool eigen : {false, true}) {
        CAPTURE(ta);
        CAPTURE(tb);
        CAPTURE(eigen);
        const Index ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
        const Index lda = ac + pad, ldb = bc + pad, ldc = n + pad;
        auto a = g.normal_vector<T>(static_cast<std::size_t>(ar * lda), 0, 1);
        auto b = g.normal_vector<T>(static_cast<std::size_t>(br * ldb), 0, 1);
        auto c = g.normal_vector<T>(static_cast<std::size_t>(m * ldc), 0, 1);
        auto expect = c;
        const T alpha = T(0.5), beta = T(-1.5);
        for (Index i = 0; i < m; ++i)
          for (Index j = 0; j < n; ++j) {
            double acc = 0;
            for (Index l = 0; l < k; ++l)
              acc += double(ta ? a[l * lda + i] : a[i * lda + l]) * double(tb ? b[j * ldb + l] : b[l * ldb + j]);
            expect[i * ldc + j] = T(alpha * acc + beta * double(c[i * ldc + j]));
          }
        if (eigen)
          Cpu::eigen_gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
        else
          Cpu::gemm(ctx, ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
        for (Index i = 0; i < m; ++i)
          for (Index j = 0; j < n; ++j)
            CHECK(c[i * ldc + j] == doctest::Approx(expect[i * ldc + j]).epsilon(std::is_same_v<T, float> ? 1e-5 : 1e-12));
      }
}

TEST_CASE("Cpu reductions do not depend on the thread count") {
  Generator g(5);
  const Index rows = 3000, cols = 300, n = 1 << 20;
  auto x = g.normal_vector<float>(static_cast<std::size_t>(rows * cols), 0, 1);
  auto big = g.normal_vector<float>(static_cast<std::size_t>(n), 0, 1);
  std::vector<float> out1(cols), out2(cols);
  Ctx<Cpu> one(1);
  Cpu::sum_rows(one, x.data(), rows, cols, 0.f, out1.data());
  const float ss1 = Cpu::sum_squares(one, big.data(), n);
  Ctx<Cpu> two(2);
  Cpu::sum_rows(two, x.data(), rows, cols, 0.f, out2.data());
  const float ss2 = Cpu::sum_squares(two, big.data(), n);
  CHECK(out1 == out2);
  CHECK(ss1 == ss2);
  double exact = 0;
  for (float v : big) exact += double(v) * v;
  CHECK(ss1 == doctest::Approx(exact).epsilon(1e-5));
  double col0 = 0;
  for (Index i = 0; i < rows; ++i) col0 += x[static_cast<std::size_t>(i * cols)];
  CHECK(out1[0] == doctest::Approx(col0).epsilon(1e-4));
}

// Tests of the probes (include/dino/probe, spec §10 and A8): kNN search and vote against hand-made sets and a
// brute-force search, the linear probe on separable and on random labels, the standardisation formula, the
// prober's metric names, determinism for a seed and independence of the thread count.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <dino/cpu.hpp>
#include <dino/probe/prober.hpp>
#include <string>
#include <utility>
#include <vector>

#include "../support/errors.hpp"

namespace dino::testing_probe {
namespace {

using B = Cpu;
using Labels = std::vector<std::int64_t>;
using dino::testing::contains;
using dino::testing::error_of;

template <class T>
Tensor<T, B> make(Index rows, Index cols, const std::vector<double>& v) {
  return Tensor<T, B>::from_host({rows, cols}, std::vector<T>(v.begin(), v.end()));
}

// Gaussian features [n, e] from a fixed seed.
template <class T>
Tensor<T, B> gaussian(Index n, Index e, std::uint64_t seed, double mean = 0, double std = 1) {
  Generator g(seed, 0, 0, 0);
  return Tensor<T, B>::from_host({n, e}, g.normal_vector<T>(static_cast<std::size_t>(n * e), mean, std));
}

Labels random_labels(Index n, Index classes, std::uint64_t seed) {
  Generator g(seed, 0, 0, 1);
  Labels y(static_cast<std::size_t>(n));
  for (auto& v : y) v = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(classes)));
  return y;
}

// The k nearest rows by a plain loop: distances in double from the T values, sorted by (distance, index).
template <class T>
std::vector<Index> brute_force(const Tensor<T, B>& train, const Tensor<T, B>& query, Index k) {
  const auto xt = train.to_host(), xq = query.to_host();
  const Index n = train.size(0), m = query.size(0), e = train.size(1);
  std::vector<Index> out;
  for (Index r = 0; r < m; ++r) {
    std::vector<std::pair<double, Index>> d;
    for (Index i = 0; i < n; ++i) {
      double s = 0;
      for (Index j = 0; j < e; ++j) {
        const double diff = static_cast<double>(xq[static_cast<std::size_t>(r * e + j)]) -
                            static_cast<double>(xt[static_cast<std::size_t>(i * e + j)]);
        s += diff * diff;
      }
      d.emplace_back(s, i);
    }
    std::sort(d.begin(), d.end());
    for (Index j = 0; j < k; ++j) out.push_back(d[static_cast<std::size_t>(j)].second);
  }
  return out;
}

TEST_CASE_TEMPLATE("probe: kNN with k = 1 is the nearest neighbour", T, float, double) {
  Ctx<B> ctx;
  // Train points on a line; queries near each of them.
  const auto train = make<T>(4, 2, {0, 0, 10, 0, 20, 0, 30, 1});
  const Labels y{7, 3, 5, 1};
  const auto query = make<T>(5, 2, {29, 0, 1, 1, 14.9, 0, 21, -3, -100, 0});
  CHECK(probe::knn_neighbours(ctx, train, query, {1, 0}) == std::vector<Index>{3, 0, 1, 2, 0});
  CHECK(probe::knn_predict(ctx, train, y, query, {1, 0}) == Labels{1, 7, 3, 5, 7});
  // k = N lists every train row by distance.
  CHECK(probe::knn_neighbours(ctx, train, query, {4, 0}) ==
        std::vector<Index>{3, 2, 1, 0, 0, 1, 2, 3, 1, 2, 0, 3, 2, 3, 1, 0, 0, 1, 2, 3});
  CHECK(probe::knn_accuracy(ctx, train, y, query, Labels{1, 7, 5, 5, 0}, {1, 0}) == doctest::Approx(0.6));
}

TEST_CASE_TEMPLATE("probe: kNN distance ties go to the smaller train index", T, float, double) {
  Ctx<B> ctx;
  // The query at the origin is at distance 1 of rows 0..3 and at distance 0 of the duplicates 4 and 5.
  const auto train = make<T>(7, 2, {1, 0, -1, 0, 0, 1, 0, -1, 0, 0, 0, 0, 5, 5});
  const Labels y{0, 1, 2, 3, 4, 5, 6};
  const auto query = make<T>(1, 2, {0, 0});
  CHECK(probe::knn_neighbours(ctx, train, query, {1, 0}) == std::vector<Index>{4});
  CHECK(probe::knn_neighbours(ctx, train, query, {4, 0}) == std::vector<Index>{4, 5, 0, 1});
  CHECK(probe::knn_neighbours(ctx, train, query, {6, 0}) == std::vector<Index>{4, 5, 0, 1, 2, 3});
  // Reversed rows: still the smaller index first.
  const auto rev = make<T>(7, 2, {5, 5, 0, 0, 0, 0, 0, -1, 0, 1, -1, 0, 1, 0});
  CHECK(probe::knn_neighbours(ctx, rev, query, {4, 0}) == std::vector<Index>{1, 2, 3, 4});
  CHECK(probe::knn_predict(ctx, rev, y, query, {1, 0}) == Labels{1});
}

TEST_CASE("probe: kNN vote ties go to the smallest label") {
  Ctx<B> ctx;
  const auto train = make<double>(5, 1, {1, 2, 3, 4, 5});
  const auto query = make<double>(1, 1, {0});
  // Neighbours in order 0, 1, 2, 3, 4.
  CHECK(probe::knn_predict(ctx, train, Labels{3, 1, 3, 1, 0}, query, {2, 0}) == Labels{1});
  CHECK(probe::knn_predict(ctx, train, Labels{3, 1, 3, 1, 0}, query, {4, 0}) == Labels{1});
  CHECK(probe::knn_predict(ctx, train, Labels{3, 1, 3, 1, 0}, query, {3, 0}) == Labels{3});
  CHECK(probe::knn_predict(ctx, train, Labels{2, 2, 0, 0, 9}, query, {5, 0}) == Labels{0});
  CHECK(probe::knn_predict(ctx, train, Labels{4, 9, 8, 7, 6}, query, {5, 0}) == Labels{4});
  CHECK(probe::knn_predict(ctx, train, Labels{9, 8, 8, 7, 7}, query, {5, 0}) == Labels{7});
}

TEST_CASE("probe: kNN rejects bad arguments with one line naming them") {
  Ctx<B> ctx;
  const auto train = make<double>(3, 2, {0, 0, 1, 1, 2, 2});
  const auto query = make<double>(1, 2, {0, 0});
  const Labels y{0, 1, 0};
  CHECK(contains(error_of([&] { probe::knn_neighbours(ctx, train, query, {4, 0}); }), "k = 4 must be in [1, N] for N = 3"));
  CHECK(contains(error_of([&] { probe::knn_neighbours(ctx, train, query, {0, 0}); }), "k = 0"));
  const auto wide = make<double>(1, 3, {0, 0, 0});
  CHECK(contains(error_of([&] { probe::knn_neighbours(ctx, train, wide, {1, 0}); }), "with the same E"));
  CHECK(contains(error_of([&] { probe::knn_predict(ctx, train, Labels{0, 1}, query, {1, 0}); }), "2 labels for 3 rows"));
  CHECK(contains(error_of([&] { probe::knn_predict(ctx, train, Labels{0, -1, 0}, query, {1, 0}); }), "label -1 of row 1"));
  const auto empty = Tensor<double, B>({0, 2});
  CHECK(probe::knn_neighbours(ctx, train, empty, {2, 0}).empty());
}

TEST_CASE_TEMPLATE("probe: kNN equals a brute-force search, in any block size", T, float, double) {
  Ctx<B> ctx;
  const auto train = gaussian<T>(300, 12, 1), query = gaussian<T>(50, 12, 2);
  for (Index k : {1, 5, 20, 300})
    for (Index block : {0, 1, 7, 50}) {
      INFO("k ", k, " block ", block);
      CHECK(probe::knn_neighbours(ctx, train, query, {k, block}) == brute_force(train, query, k));
    }
  // Many exact ties: coordinates in {0, 1, 2}, duplicated rows. The result is the (distance, index) order.
  Generator g(3);
  std::vector<double> v(200 * 3), w(20 * 3);
  for (auto& x : v) x = static_cast<double>(g.below(3));
  for (auto& x : w) x = static_cast<double>(g.below(3));
  const auto tt = make<T>(200, 3, v), tq = make<T>(20, 3, w);
  for (Index k : {1, 5, 20, 77})
    for (Index block : {0, 3}) CHECK(probe::knn_neighbours(ctx, tt, tq, {k, block}) == brute_force(tt, tq, k));
}

TEST_CASE("probe: kNN stays exact under a large common offset and for collapsed features") {
  Ctx<B> ctx;
  // A common offset of 3000 on every feature, neighbours apart by 1e-3: ||b||^2 - 2ab of the raw features in
  // float would be off by about 1, far above the gaps; the result must still be the brute force in double.
  Generator g(4);
  const Index n = 64, e = 6;
  std::vector<double> v(static_cast<std::size_t>(n * e)), q(static_cast<std::size_t>(3 * e));
  for (auto& x : v) x = 3000 + 1e-3 * static_cast<double>(g.below(50));
  for (auto& x : q) x = 3000 + 1e-3 * static_cast<double>(g.below(50));
  const auto train = make<float>(n, e, v), query = make<float>(3, e, q);
  for (Index k : {1, 5, 20}) CHECK(probe::knn_neighbours(ctx, train, query, {k, 0}) == brute_force(train, query, k));
  // Features collapsed to one point: all distances 0, the first k indices.
  const auto flat = make<float>(n, e, std::vector<double>(static_cast<std::size_t>(n * e), 0.25));
  std::vector<Index> first(5 * 3);
  for (Index r = 0; r < 3; ++r)
    for (Index j = 0; j < 5; ++j) first[static_cast<std::size_t>(r * 5 + j)] = j;
  CHECK(probe::knn_neighbours(ctx, flat, query, {5, 0}) == first);
}

TEST_CASE("probe: random_permutation is a seeded permutation") {
  Generator a(11, purpose::probe), b(11, purpose::probe), c(12, purpose::probe);
  const auto p = probe::random_permutation(100, a);
  CHECK(p == probe::random_permutation(100, b));
  CHECK(p != probe::random_permutation(100, c));
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (Index i = 0; i < 100; ++i) CHECK(sorted[static_cast<std::size_t>(i)] == i);
  Generator d(1);
  CHECK(probe::random_permutation(0, d).empty());
  CHECK(probe::random_permutation(1, d) == std::vector<Index>{0});
}

// Three well separated clusters in 8 features (centres 8 apart along axes) with labels by cluster.
template <class T>
void clusters(Index n, std::uint64_t seed, Tensor<T, B>& x, Labels& y) {
  Generator g(seed);
  const Index e = 8;
  std::vector<T> v(static_cast<std::size_t>(n * e));
  y.resize(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    const auto c = static_cast<std::int64_t>(g.below(3));
    y[static_cast<std::size_t>(i)] = c;
    for (Index j = 0; j < e; ++j)
      v[static_cast<std::size_t>(i * e + j)] = static_cast<T>(g.normal(0, 0.5) + (j == c ? 8.0 : 0.0) + 1.0);
  }
  x = Tensor<T, B>::from_host({n, e}, v);
}

TEST_CASE_TEMPLATE("probe: the linear probe separates linearly separable classes", T, float, double) {
  Ctx<B> ctx;
  Tensor<T, B> train, valid;
  Labels ytr, yva;
  clusters<T>(600, 1, train, ytr);
  clusters<T>(300, 2, valid, yva);
  probe::LinearProbeOptions o;
  o.n_classes = 3;
  o.epochs = 10;
  o.batch_size = 10;
  CHECK(probe::linear_probe_accuracy(ctx, train, ytr, valid, yva, o, 5) >= 0.99);
  // Untrained (0 epochs), the random init is far from that.
  o.epochs = 0;
  CHECK(probe::linear_probe_accuracy(ctx, train, ytr, valid, yva, o, 5) < 0.8);
  CHECK(probe::knn_accuracy(ctx, train, ytr, valid, yva, {5, 0}) == 1.0);
}

TEST_CASE("probe: the linear probe stays near chance on random labels") {
  Ctx<B> ctx;
  const auto train = gaussian<float>(800, 16, 21), valid = gaussian<float>(2000, 16, 22);
  const Labels ytr = random_labels(800, 4, 23), yva = random_labels(2000, 4, 24);
  probe::LinearProbeOptions o;
  o.n_classes = 4;
  o.epochs = 5;
  o.batch_size = 64;
  const double acc = probe::linear_probe_accuracy(ctx, train, ytr, valid, yva, o, 9);
  CHECK(acc > 0.2);  // chance 0.25; 2000 samples: std 0.01
  CHECK(acc < 0.3);
  const double knn = probe::knn_accuracy(ctx, train, ytr, valid, yva, {20, 0});
  CHECK(knn > 0.2);
  CHECK(knn < 0.3);
}

TEST_CASE("probe: the linear probe's argmax breaks ties to the smallest class") {
  Ctx<B> ctx;
  probe::LinearProbeOptions o;
  o.n_classes = 4;
  probe::LinearProbe<double, B> p(2, o);
  // weight 0, bias (1, 3, 3, 2): every row predicts class 1.
  const std::vector<double> values{0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 2};
  B::copy_from_host(p.params().values().data(), values.data(), 12);
  CHECK(p.predict(ctx, make<double>(2, 2, {1, 2, -3, 4})) == Labels{1, 1});
  CHECK(probe::argmax_rows(std::vector<float>{1, NAN, 5, 2, 2, 0}, 2, 3) == Labels{1, 0});
}

TEST_CASE("probe: the linear probe rejects bad arguments with one line naming them") {
  Ctx<B> ctx;
  probe::LinearProbeOptions o;
  o.n_classes = 2;
  probe::LinearProbe<double, B> p(2, o);
  const auto x = make<double>(3, 2, {0, 0, 1, 1, 2, 2});
  CHECK(contains(error_of([&] { p.fit(ctx, x, Labels{0, 1, 2}, {0, 1, 2}); }), "label 2 of row 2 is outside [0, 2)"));
  CHECK(contains(error_of([&] { p.fit(ctx, x, Labels{0, 1, 1}, {0, 1, 1}); }), "not a permutation"));
  CHECK(contains(error_of([&] { p.fit(ctx, x, Labels{0, 1, 1}, {0, 1}); }), "batch order of 2 indices for 3"));
  CHECK(contains(error_of([&] { p.predict(ctx, make<double>(1, 3, {0, 0, 0})); }), "must be [rows, 2], got [1, 3]"));
  o.n_classes = 0;
  CHECK(contains(error_of([&] { probe::LinearProbe<double, B>(2, o); }), "number of classes must be positive"));
  o.n_classes = 2;
  o.batch_size = 0;
  CHECK(contains(error_of([&] { probe::LinearProbe<double, B>(2, o); }), "batch size must be positive"));
}

TEST_CASE_TEMPLATE("probe: standardisation by the train mean and unbiased std", T, float, double) {
  Ctx<B> ctx;
  // Column 0: 1, 2, 3, 6 (mean 3, unbiased var 14/3); column 1 constant (std 0 -> 1); column 2: -1, 1, -1, 1.
  auto train = make<T>(4, 3, {1, 5, -1, 2, 5, 1, 3, 5, -1, 6, 5, 1});
  auto valid = make<T>(2, 3, {3, 7, 0, 0, 5, 2});
  const auto s = probe::feature_stats(ctx, train);
  const double sd0 = std::sqrt(14.0 / 3.0), sd2 = std::sqrt(4.0 / 3.0);
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  CHECK(s.mean[0] == doctest::Approx(3).epsilon(tol));
  CHECK(s.mean[1] == doctest::Approx(5).epsilon(tol));
  CHECK(s.mean[2] == doctest::Approx(0).epsilon(tol));
  CHECK(s.std[0] == doctest::Approx(sd0).epsilon(tol));
  CHECK(s.std[1] == T(1));
  CHECK(s.std[2] == doctest::Approx(sd2).epsilon(tol));
  probe::normalize_data(ctx, train, valid);
  const std::vector<double> want_train{-2 / sd0, 0, -1 / sd2, -1 / sd0, 0, 1 / sd2,
                                       0,        0, -1 / sd2, 3 / sd0,  0, 1 / sd2};
  const std::vector<double> want_valid{0, 2, 0, -3 / sd0, 0, 2 / sd2};
  const auto got_train = train.to_host(), got_valid = valid.to_host();
  for (std::size_t i = 0; i < want_train.size(); ++i)
    CHECK(static_cast<double>(got_train[i]) == doctest::Approx(want_train[i]).epsilon(tol).scale(1));
  for (std::size_t i = 0; i < want_valid.size(); ++i)
    CHECK(static_cast<double>(got_valid[i]) == doctest::Approx(want_valid[i]).epsilon(tol).scale(1));
  // A std just above 10 eps stays; one below is replaced by 1.
  auto tiny = make<T>(2, 2, {0, 0, 30 * std::numeric_limits<T>::epsilon(), 10 * std::numeric_limits<T>::epsilon()});
  const auto st = probe::feature_stats(ctx, tiny);
  CHECK(st.std[0] != T(1));
  CHECK(st.std[1] == T(1));
  auto one = make<T>(1, 3, {1, 2, 3});
  CHECK(contains(error_of([&] { probe::feature_stats(ctx, one); }), "at least 2 train rows, got 1"));
}

// Student and teacher features of the cluster data, the teacher's scaled by 100 per feature (raw kNN differs,
// standardised does not).
template <class T>
probe::ProbeFeatures<T, B> cluster_features(double scale0) {
  probe::ProbeFeatures<T, B> f;
  clusters<T>(300, 7, f.train, f.train_labels);
  clusters<T>(120, 8, f.valid, f.valid_labels);
  if (scale0 != 1) {
    for (Tensor<T, B>* t : {&f.train, &f.valid}) {
      auto v = t->to_host();
      for (std::size_t i = 0; i < v.size(); i += 8) v[i] = static_cast<T>(v[i] * scale0);
      *t = Tensor<T, B>::from_host(t->shape(), v);
    }
  }
  return f;
}

TEST_CASE("probe: the prober reports spec §10's metric names") {
  Ctx<B> ctx;
  const auto student = cluster_features<double>(1), teacher = cluster_features<double>(100);
  probe::ProbeOptions o;
  o.n_classes = 3;
  o.epochs = 2;
  o.k = 5;
  o.batch_size = 64;
  o.seed = 3;
  auto m = probe_metrics(ctx, student, teacher, o);
  std::vector<std::string> names;
  for (const auto& kv : m) {
    names.push_back(kv.first);
    CHECK(kv.second >= 0);
    CHECK(kv.second <= 1);
  }
  CHECK(names == std::vector<std::string>{"probe/norm/student", "probe/norm/student/knn", "probe/norm/teacher",
                                          "probe/norm/teacher/knn", "probe/student", "probe/student/knn",
                                          "probe/teacher", "probe/teacher/knn"});
  // The values are those of the parts, on raw and on standardised features.
  probe::KnnOptions ko;
  ko.k = 5;
  CHECK(m["probe/teacher/knn"] ==
        probe::knn_accuracy(ctx, teacher.train, teacher.train_labels, teacher.valid, teacher.valid_labels, ko));
  probe::LinearProbeOptions lo;
  lo.n_classes = 3;
  lo.epochs = 2;
  lo.batch_size = 64;
  auto tr = student.train.clone(), va = student.valid.clone();
  probe::normalize_data(ctx, tr, va);
  CHECK(m["probe/norm/student"] ==
        probe::linear_probe_accuracy(ctx, tr, student.train_labels, va, student.valid_labels, lo, 3));
  CHECK(m["probe/norm/student/knn"] == probe::knn_accuracy(ctx, tr, student.train_labels, va, student.valid_labels, ko));
  CHECK(m["probe/teacher/knn"] < m["probe/norm/teacher/knn"]);  // the scaled feature dominates raw distances

  o.normalize = false;
  o.k = 0;
  m = probe_metrics(ctx, student, teacher, o);
  CHECK(m.size() == 2);
  CHECK(m.count("probe/student") == 1);
  CHECK(m.count("probe/teacher") == 1);
  o.epochs = 0;
  o.k = 3;
  o.normalize = true;
  m = probe_metrics(ctx, student, teacher, o);
  CHECK(m.size() == 4);
  CHECK(m.count("probe/norm/teacher/knn") == 1);
  o.n_classes = 2;  // labels reach 2
  CHECK(contains(error_of([&] { probe_metrics(ctx, student, teacher, o); }), "prober train: label 2 of row"));
}

// The trained weights of a linear probe run.
template <class T>
std::vector<T> trained(Ctx<B>& ctx, const Tensor<T, B>& x, const Labels& y, std::uint64_t seed) {
  probe::LinearProbeOptions o;
  o.n_classes = 3;
  o.epochs = 3;
  o.batch_size = 50;
  probe::LinearProbe<T, B> p(x.size(1), o);
  Generator order(seed, purpose::probe, 0, 0), init(seed, purpose::probe, 0, 1);
  p.reset_parameters(init);
  p.fit(ctx, x, y, probe::random_permutation(x.size(0), order));
  return p.params().values().to_host();
}

TEST_CASE_TEMPLATE("probe: results are fixed by the seed and independent of the thread count", T, float, double) {
  Ctx<B> ctx;
  const int threads = ctx.threads();
  Tensor<T, B> x;
  Labels y;
  clusters<T>(400, 5, x, y);
  const auto big = gaussian<T>(3000, 64, 6), queries = gaussian<T>(500, 64, 7);
  ctx.set_threads(1);
  const auto w1 = trained(ctx, x, y, 1), w1b = trained(ctx, x, y, 1), w2 = trained(ctx, x, y, 2);
  const auto nb1 = probe::knn_neighbours(ctx, big, queries, {20, 0});
  ctx.set_threads(4);
  const auto w4 = trained(ctx, x, y, 1);
  const auto nb4 = probe::knn_neighbours(ctx, big, queries, {20, 0});
  const auto nb4b = probe::knn_neighbours(ctx, big, queries, {20, 33});
  ctx.set_threads(threads);
  CHECK(w1 == w1b);
  CHECK(w1 != w2);
  CHECK(w1 == w4);
  CHECK(nb1 == nb4);
  CHECK(nb1 == nb4b);
}

}  // namespace
}  // namespace dino::testing_probe

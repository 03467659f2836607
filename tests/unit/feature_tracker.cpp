// The symmetric eigensolver (core/linalg.hpp) against Eigen's SelfAdjointEigenSolver, and the FeatureTracker
// figures (train/feature_tracker.hpp) on hand-checkable matrices, on sizes that take every chunking path against
// direct double arithmetic, and on bad input.
#include <doctest/doctest.h>

// GCC 12 reports a false maybe-uninitialized inside its AVX-512 intrinsics when inlining Eigen (see cpu/blas.hpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Dense>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <cmath>
#include <dino/core/linalg.hpp>
#include <dino/cpu.hpp>
#include <dino/core/random.hpp>
#include <dino/train/feature_tracker.hpp>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../support/errors.hpp"

namespace dino {
namespace {

using testing::contains;
using testing::error_of;
using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Deterministic standard normals (Box-Muller on a SplitMix64 stream).
struct Normals {
  std::uint64_t state;
  explicit Normals(std::uint64_t seed) : state(seed) {}
  double uniform() {
    state += 0x9e3779b97f4a7c15ULL;
    return (static_cast<double>(detail::mix64(state) >> 11) + 0.5) * 0x1.0p-53;
  }
  double operator()() { return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
  Mat matrix(Index rows, Index cols) {
    Mat m(rows, cols);
    for (Index i = 0; i < rows; ++i)
      for (Index j = 0; j < cols; ++j) m(i, j) = (*this)();
    return m;
  }
};

std::vector<double> values_of(const Mat& m) { return std::vector<double>(m.data(), m.data() + m.size()); }

// Worst |ours - Eigen's| over the ascending eigenvalues, relative to the largest magnitude. Both are backward
// stable: each is within a small multiple of n * eps * ||A|| of the exact ones.
double eigen_error(const Mat& a) {
  const Index n = a.rows();
  const std::vector<double> ours = symmetric_eigenvalues(values_of(a), n);
  Eigen::SelfAdjointEigenSolver<Mat> es(a, Eigen::EigenvaluesOnly);
  REQUIRE(static_cast<Index>(ours.size()) == n);
  double err = 0, scale = 0;
  for (Index i = 0; i < n; ++i) {
    err = std::max(err, std::abs(ours[static_cast<std::size_t>(i)] - es.eigenvalues()(i)));
    scale = std::max(scale, std::abs(es.eigenvalues()(i)));
  }
  for (Index i = 1; i < n; ++i) CHECK(ours[static_cast<std::size_t>(i - 1)] <= ours[static_cast<std::size_t>(i)]);
  return scale == 0 ? err : err / scale;
}

TEST_CASE("symmetric_eigenvalues: random, rank-deficient and diagonal matrices as Eigen's solver") {
  Normals rng(11);
  for (Index n : {1, 2, 50, 300}) {
    CAPTURE(n);
    const double tol = 10 * static_cast<double>(n) * std::numeric_limits<double>::epsilon();
    const Mat g = rng.matrix(n, n);
    CHECK(eigen_error(g + g.transpose()) <= tol);
    // A Gram matrix of rank min(n, 3): n - 3 eigenvalues are zero.
    const Mat b = rng.matrix(n, std::min<Index>(n, 3));
    CHECK(eigen_error(b * b.transpose()) <= tol);
    // Large entries (the power-of-two scaling) and a huge spread of eigenvalues.
    const Mat c = rng.matrix(n, n) * 1e150;
    CHECK(eigen_error(c + c.transpose()) <= tol);
  }
  // A diagonal matrix is already tridiagonal: its eigenvalues come back exactly, sorted.
  const std::vector<double> diag = {3.5, -1e-3, 0.0, 2e8, -7.0, 3.5};
  const Index n = static_cast<Index>(diag.size());
  std::vector<double> a(static_cast<std::size_t>(n * n), 0.0);
  for (Index i = 0; i < n; ++i) a[static_cast<std::size_t>(i * n + i)] = diag[static_cast<std::size_t>(i)];
  std::vector<double> want = diag;
  std::sort(want.begin(), want.end());
  CHECK(symmetric_eigenvalues(a, n) == want);
  // 2x2 in closed form: [[2, 1], [1, 2]] has 1 and 3.
  const std::vector<double> two = symmetric_eigenvalues({2, 1, 1, 2}, 2);
  CHECK(two[0] == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(two[1] == doctest::Approx(3.0).epsilon(1e-15));
  CHECK(symmetric_eigenvalues({}, 0).empty());
  CHECK(symmetric_eigenvalues(std::vector<double>(9, 0.0), 3) == std::vector<double>(3, 0.0));
  // Only the lower triangle is read.
  CHECK(symmetric_eigenvalues({2, 99, 1, 2}, 2) == symmetric_eigenvalues({2, 1, 1, 2}, 2));
}

TEST_CASE("symmetric_eigenvalues: bad input is a one-line error") {
  CHECK(contains(error_of([] { symmetric_eigenvalues({1, 2, 3}, 2); }), "3 values for a 2x2 matrix"));
  CHECK(contains(error_of([] { symmetric_eigenvalues({1, 0, std::nan(""), 1}, 2); }), "entry (1, 0) is not finite"));
}

// ------------------------------------------------------------------------------------------------------------
template <class T>
Tensor<T, Cpu> tensor(Index rows, Index cols, const std::vector<double>& v) {
  std::vector<T> host(v.begin(), v.end());
  return Tensor<T, Cpu>::from_host(Shape{rows, cols}, host);
}
template <class T>
Tensor<T, Cpu> tensor(const Mat& m) {
  return tensor<T>(m.rows(), m.cols(), values_of(m));
}

const char* const kPerMatrix[] = {"x.mean().mean()", "x.mean().std()", "x.std().mean()", "x.std().std()",
                                  "x.corr().mean()", "x.pdist().mean()"};
const char* const kPerMatrixSvd[] = {"x.rank()", "x.nPC(var_explained=0.95)", "x.nPC(var_explained=0.99)",
                                     "x.nPC(var_explained=0.999)", "x.corr().rank()"};

TEST_CASE_TEMPLATE("feature_stats: the names of spec 11, with and without singular values and histograms", T, double,
                   float) {
  Normals rng(3);
  Ctx<Cpu> ctx;
  const auto t = tensor<T>(rng.matrix(6, 5)), s = tensor<T>(rng.matrix(9, 5));
  std::map<std::string, std::vector<double>> hist;
  const auto all = feature_stats(ctx, "valid", "proje", t, s, FeatureStatsOptions{}, &hist);
  std::vector<std::string> want = {"valid/feat/proje/l2(t_x,s_x).mean()", "valid/feat/proje/rmse(t_x,s_x).mean()",
                                   "valid/feat/proje/cos(t_x,s_x).mean()"};
  for (const char* i : {"t_", "s_"}) {
    for (const char* n : kPerMatrix) want.push_back(std::string("valid/feat/proje/") + i + n);
    for (const char* n : kPerMatrixSvd) want.push_back(std::string("valid/feat/proje/") + i + n);
  }
  CHECK(all.size() == want.size());
  for (const auto& n : want) CHECK_MESSAGE(all.count(n) == 1, n);

  FeatureStatsOptions o;
  o.svd = false;
  const auto part = feature_stats(ctx, "valid", "proje", t, s, o);
  CHECK(part.size() == want.size() - 10);
  for (const auto& [name, v] : part) CHECK_MESSAGE(name.find("rank()") == std::string::npos, name);
  for (const auto& [name, v] : part) CHECK_MESSAGE(name.find("nPC(") == std::string::npos, name);

  // The histograms' value vectors and their lengths: features, pairs of rows, teacher rows.
  const std::map<std::string, std::size_t> sizes = {
      {"valid/feat/proje/t_x.mean().hist()", 5}, {"valid/feat/proje/t_x.std().hist()", 5},
      {"valid/feat/proje/t_x.corr().hist()", 15}, {"valid/feat/proje/t_x.pdist().hist()", 15},
      {"valid/feat/proje/s_x.mean().hist()", 5}, {"valid/feat/proje/s_x.std().hist()", 5},
      {"valid/feat/proje/s_x.corr().hist()", 36}, {"valid/feat/proje/s_x.pdist().hist()", 36},
      {"valid/feat/proje/l2(t_x,s_x).hist()", 6}, {"valid/feat/proje/rmse(t_x,s_x).hist()", 6},
      {"valid/feat/proje/cos(t_x,s_x).hist()", 6}};
  CHECK(hist.size() == sizes.size());
  for (const auto& [name, n] : sizes) {
    REQUIRE_MESSAGE(hist.count(name) == 1, name);
    CHECK_MESSAGE(hist.at(name).size() == n, name);
  }
}

// Rows +-3 e0 and +-e1: columns already centred, singular values sqrt(18) and sqrt(2) (ratio 3/4: one component
// below every threshold), rank 2, correlations -1 and +-1/3, distances 6, 2 and four sqrt(10).
TEST_CASE_TEMPLATE("feature_stats: a rank-2 matrix computed by hand", T, double, float) {
  const std::vector<double> x = {3, 0, 0, 0, -3, 0, 0, 0, 0, 1, 0, 0, 0, -1, 0, 0};
  Ctx<Cpu> ctx;
  const auto t = tensor<T>(4, 4, x), s = tensor<T>(4, 4, x);
  std::map<std::string, std::vector<double>> hist;
  const auto m = feature_stats(ctx, "train", "logit", t, s, FeatureStatsOptions{}, &hist);
  const std::string b = "train/feat/logit/t_x.";
  const double tol = 1e-12;
  CHECK(m.at(b + "rank()") == 2);
  CHECK(m.at(b + "nPC(var_explained=0.95)") == 1);
  CHECK(m.at(b + "nPC(var_explained=0.99)") == 1);
  CHECK(m.at(b + "nPC(var_explained=0.999)") == 1);
  CHECK(m.at(b + "corr().rank()") == 2);
  CHECK(m.at(b + "mean().mean()") == 0);
  CHECK(m.at(b + "mean().std()") == 0);
  const double sd[4] = {std::sqrt(6.0), std::sqrt(2.0 / 3), 0, 0};
  const double sd_mean = (sd[0] + sd[1]) / 4;
  double v = 0;
  for (double e : sd) v += (e - sd_mean) * (e - sd_mean);
  CHECK(m.at(b + "std().mean()") == doctest::Approx(sd_mean).epsilon(tol));
  CHECK(m.at(b + "std().std()") == doctest::Approx(std::sqrt(v / 3)).epsilon(tol));
  CHECK(m.at(b + "corr().mean()") == doctest::Approx(-1.0 / 3).epsilon(tol));
  CHECK(m.at(b + "pdist().mean()") == doctest::Approx((8 + 4 * std::sqrt(10.0)) / 6).epsilon(tol));
  const std::vector<double> corr = {-1, -1.0 / 3, 1.0 / 3, 1.0 / 3, -1.0 / 3, -1};
  const std::vector<double> dist = {6, std::sqrt(10.0), std::sqrt(10.0), std::sqrt(10.0), std::sqrt(10.0), 2};
  for (std::size_t k = 0; k < 6; ++k) {
    CHECK(hist.at(b + "corr().hist()")[k] == doctest::Approx(corr[k]).epsilon(tol));
    CHECK(hist.at(b + "pdist().hist()")[k] == doctest::Approx(dist[k]).epsilon(tol));
  }
  // Identical teacher and student.
  CHECK(m.at("train/feat/logit/l2(t_x,s_x).mean()") == 0);
  CHECK(m.at("train/feat/logit/rmse(t_x,s_x).mean()") == 0);
  CHECK(m.at("train/feat/logit/cos(t_x,s_x).mean()") == doctest::Approx(1.0).epsilon(1e-15));
}

TEST_CASE_TEMPLATE("feature_stats: teacher-student distances use the first Nt student rows", T, double, float) {
  Ctx<Cpu> ctx;
  const auto t = tensor<T>(2, 2, {1, 0, 0, 2});
  const auto s = tensor<T>(3, 2, {0, 1, 0, 2, 50, -7});
  std::map<std::string, std::vector<double>> hist;
  const auto m = feature_stats(ctx, "train", "embed", t, s, FeatureStatsOptions{}, &hist);
  CHECK(m.at("train/feat/embed/l2(t_x,s_x).mean()") == doctest::Approx(std::sqrt(2.0) / 2));
  CHECK(m.at("train/feat/embed/rmse(t_x,s_x).mean()") == doctest::Approx(0.5));
  CHECK(m.at("train/feat/embed/cos(t_x,s_x).mean()") == doctest::Approx(0.5));
  CHECK(hist.at("train/feat/embed/cos(t_x,s_x).hist()") == std::vector<double>{0, 1});
  // The testbed's cosine has no epsilon: a zero row gives NaN.
  const auto z = tensor<T>(2, 2, {0, 0, 1, 1});
  CHECK(std::isnan(feature_stats(ctx, "train", "embed", z, s).at("train/feat/embed/cos(t_x,s_x).mean()")));
}

TEST_CASE_TEMPLATE("feature_stats: a constant row has no correlation (torch's NaN, then 0)", T, double, float) {
  Ctx<Cpu> ctx;
  const auto x = tensor<T>(3, 3, {1, 2, 3, 5, 5, 5, 3, 2, 1});
  std::map<std::string, std::vector<double>> hist;
  const auto m = feature_stats(ctx, "valid", "embed", x, x, FeatureStatsOptions{}, &hist);
  const std::vector<double>& corr = hist.at("valid/feat/embed/t_x.corr().hist()");
  REQUIRE(corr.size() == 3);
  CHECK(corr[0] == 0);
  CHECK(corr[1] == doctest::Approx(-1.0).epsilon(1e-15));
  CHECK(corr[2] == 0);
  CHECK(m.at("valid/feat/embed/t_x.corr().mean()") == doctest::Approx(-1.0 / 3));
  CHECK(m.at("valid/feat/embed/t_x.corr().rank()") == 1);
  // An all-zero matrix: rank 0, all correlations 0; every principal-component ratio is NaN, so the counts
  // are the full min(N, D), as torch's numel - sum(thr < nan).
  const auto zero = tensor<T>(3, 2, std::vector<double>(6, 0.0));
  const auto mz = feature_stats(ctx, "valid", "embed", zero, zero);
  CHECK(mz.at("valid/feat/embed/t_x.rank()") == 0);
  CHECK(mz.at("valid/feat/embed/t_x.corr().rank()") == 0);
  CHECK(mz.at("valid/feat/embed/t_x.corr().mean()") == 0);
  CHECK(mz.at("valid/feat/embed/t_x.nPC(var_explained=0.95)") == 2);
}

TEST_CASE("feature_stats: one row (no std, no pairs) and non-finite values give NaN, not an error") {
  Ctx<Cpu> ctx;
  const auto one = tensor<double>(1, 3, {1, 2, 4});
  const auto m = feature_stats(ctx, "train", "embed", one, one);
  CHECK(std::isnan(m.at("train/feat/embed/t_x.std().mean()")));
  CHECK(std::isnan(m.at("train/feat/embed/t_x.corr().mean()")));
  CHECK(std::isnan(m.at("train/feat/embed/t_x.pdist().mean()")));
  CHECK(m.at("train/feat/embed/t_x.rank()") == 1);
  CHECK(m.at("train/feat/embed/t_x.mean().mean()") == doctest::Approx(7.0 / 3));

  const auto bad = tensor<double>(2, 2, {1, std::numeric_limits<double>::infinity(), 0, 1});
  const auto mb = feature_stats(ctx, "train", "embed", bad, bad);
  CHECK(std::isnan(mb.at("train/feat/embed/t_x.rank()")));
  CHECK(std::isnan(mb.at("train/feat/embed/t_x.nPC(var_explained=0.99)")));
  CHECK(std::isnan(mb.at("train/feat/embed/t_x.corr().rank()")));
}

TEST_CASE("feature_stats: bad shapes are one-line errors") {
  Ctx<Cpu> ctx;
  const auto a = tensor<float>(4, 3, std::vector<double>(12, 1.0));
  const auto wide = tensor<float>(4, 5, std::vector<double>(20, 1.0));
  const auto few = tensor<float>(2, 3, std::vector<double>(6, 1.0));
  const auto flat = Tensor<float, Cpu>::from_host(Shape{12}, std::vector<float>(12, 1.0f));
  const auto empty = Tensor<float, Cpu>(Shape{0, 3});
  CHECK(contains(error_of([&] { feature_stats(ctx, "train", "embed", a, wide); }), "different feature sizes"));
  CHECK(contains(error_of([&] { feature_stats(ctx, "train", "embed", a, few); }),
                 "the student has 2 rows, fewer than the teacher's 4"));
  CHECK(contains(error_of([&] { feature_stats(ctx, "train", "embed", flat, a); }), "must be [N, D] matrices"));
  CHECK(contains(error_of([&] { feature_stats(ctx, "train", "embed", empty, a); }), "empty outputs"));
  CHECK(contains(error_of([&] { feature_stats(ctx, "", "embed", a, a); }), "empty prefix or kind"));
}

// Direct double arithmetic: pairwise distances and correlations from the rows, singular values by Eigen's SVD.
struct Direct {
  std::vector<double> pdist, corr;
  Eigen::VectorXd sigma, sigma_centred;
};
Direct direct(const Mat& x) {
  Direct r;
  const Index n = x.rows();
  Mat z = x.colwise() - x.rowwise().mean();
  for (Index i = 0; i < n; ++i) z.row(i) /= z.row(i).norm();
  for (Index i = 0; i < n; ++i)
    for (Index j = i + 1; j < n; ++j) {
      r.pdist.push_back((x.row(i) - x.row(j)).norm());
      r.corr.push_back(z.row(i).dot(z.row(j)));
    }
  r.sigma = Eigen::BDCSVD<Mat>(x).singularValues();
  const Mat c = x.rowwise() - x.colwise().mean();
  r.sigma_centred = Eigen::BDCSVD<Mat>(c).singularValues();
  return r;
}

double npc(const Eigen::VectorXd& s, double thr) {
  double total = s.sum(), cum = 0, above = 0;
  for (Index k = 0; k < s.size(); ++k) above += thr < (cum += s(k)) / total ? 1 : 0;
  return static_cast<double>(s.size()) - above;
}

// Sizes that take the row blocks of the N x N Gram (N > 256), its column chunks (D > 2^21 / N) and the D x D
// path (D < N), on low-rank data: rank, nPC and every distance and correlation as direct double arithmetic.
TEST_CASE("feature_stats: every Gram path against direct double arithmetic") {
  Normals rng(5);
  Ctx<Cpu> ctx(2);
  struct Size {
    Index n, d, k;
  };
  for (const Size& sz : {Size{300, 320, 7}, Size{9, 240000, 4}, Size{60, 12, 5}, Size{40, 12, 12}}) {
    CAPTURE(sz.n);
    CAPTURE(sz.d);
    const Mat x = rng.matrix(sz.n, sz.k) * rng.matrix(sz.k, sz.d) + Mat::Constant(sz.n, sz.d, 0.5);
    const Direct want = direct(x);
    const auto t = tensor<double>(x);
    std::map<std::string, std::vector<double>> hist;
    const auto m = feature_stats(ctx, "train", "logit", t, t, FeatureStatsOptions{}, &hist);
    const std::string b = "train/feat/logit/t_x.";
    // The offset adds one dimension to the rows' span unless it already is full; rows centred lose it again.
    CHECK(m.at(b + "rank()") == static_cast<double>(std::min({sz.n, sz.d, sz.k + 1})));
    CHECK(m.at(b + "corr().rank()") == static_cast<double>(std::min({sz.n, sz.d - 1, sz.k})));
    for (double thr : {0.95, 0.99, 0.999}) {
      const std::string name = b + "nPC(var_explained=" + (thr == 0.95 ? "0.95" : thr == 0.99 ? "0.99" : "0.999") + ")";
      CHECK_MESSAGE(m.at(name) == npc(want.sigma_centred, thr), name);
    }
    const auto& pd = hist.at(b + "pdist().hist()");
    const auto& co = hist.at(b + "corr().hist()");
    REQUIRE(pd.size() == want.pdist.size());
    double worst_pd = 0, worst_co = 0, scale = x.rowwise().norm().maxCoeff();
    for (std::size_t k = 0; k < pd.size(); ++k) {
      worst_pd = std::max(worst_pd, std::abs(pd[k] - want.pdist[k]) / scale);
      worst_co = std::max(worst_co, std::abs(co[k] - want.corr[k]));
    }
    CHECK(worst_pd < 1e-10);
    CHECK(worst_co < 1e-12);
  }
}

TEST_CASE("feature_stats: the same input gives bit-identical figures") {
  Normals rng(9);
  Ctx<Cpu> ctx(2);
  const auto t = tensor<float>(rng.matrix(70, 90)), s = tensor<float>(rng.matrix(140, 90));
  std::map<std::string, std::vector<double>> h1, h2;
  const auto a = feature_stats(ctx, "train", "proje", t, s, FeatureStatsOptions{}, &h1);
  const auto b = feature_stats(ctx, "train", "proje", t, s, FeatureStatsOptions{}, &h2);
  CHECK(a == b);
  CHECK(h1 == h2);
}

}  // namespace
}  // namespace dino

// Parity of the FeatureTracker and FeatureHistTracker figures (spec §11) with the testbed's torch expressions, as
// make_feature_fixtures.py evaluated them in float64 and, on the same values rounded, in float32: every name both
// ways, the ranks and principal-component counts exactly, the other figures and the histogram vectors within
// tolerances that cover torch's own rounding in the run's precision.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <dino/cpu.hpp>
#include <dino/train/feature_tracker.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"

namespace dino::parity_features {
namespace {

using json = nlohmann::json;
using B = Cpu;

const io::Safetensors& fixture() {
  static const io::Safetensors f =
      io::Safetensors::load(std::string(DINO_SOURCE_DIR) + "/tests/parity/fixtures/feature_stats.safetensors");
  return f;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Counts (ranks, numbers of components) must agree exactly.
bool is_count(const std::string& name) { return has(name, "rank()") || has(name, "nPC("); }

// Correlations and cosines are dimensionless; everything else is in the data's units, so a figure near zero is
// judged against the data's RMS (a mean of centred features, for one, is zero up to rounding of that size).
double floor_of(const std::string& name, double data_rms) {
  return has(name, "corr()") || has(name, "cos(") ? 1.0 : data_rms;
}

template <class T>
Tensor<T, B> load(const std::string& name, std::vector<T>& host) {
  const io::TensorData& t = fixture().at(name);
  REQUIRE(t.dtype == io::dtype_of<T>());
  host = fixture().values<T>(name);
  return Tensor<T, B>::from_host(Shape(t.shape), host);
}

template <class T>
double rms(const std::vector<T>& a, const std::vector<T>& b) {
  double s = 0;
  for (T v : a) s += static_cast<double>(v) * v;
  for (T v : b) s += static_cast<double>(v) * v;
  return std::sqrt(s / static_cast<double>(a.size() + b.size()));
}

// Squared norms of the rows of x [n, d].
template <class T>
std::vector<double> row_norms2(const std::vector<T>& x, Index d) {
  std::vector<double> out(x.size() / static_cast<std::size_t>(d), 0.0);
  for (std::size_t i = 0; i < x.size(); ++i) out[i / static_cast<std::size_t>(d)] += static_cast<double>(x[i]) * x[i];
  return out;
}

// Relative tolerances: float32 torch rounds every intermediate (sums of up to 40 terms, corrcoef's divisions), so
// 1e-5 of the figure or of its floor; float64 torch and dino's double arithmetic differ in summation order only.
template <class T>
double rel_tol() {
  return std::is_same_v<T, double> ? 1e-9 : 1e-5;
}

TEST_CASE_TEMPLATE("feature stats parity: every figure and histogram vector of every case, as torch", T, double, float) {
  const std::string p = std::is_same_v<T, double> ? "f64/" : "f32/";
  const json cases = json::parse(fixture().metadata.at("cases"));
  REQUIRE(cases.size() >= 4);
  const double rtol = rel_tol<T>();
  const double eps_t = std::numeric_limits<T>::epsilon();
  Ctx<B> ctx;
  for (auto c = cases.begin(); c != cases.end(); ++c) {
    const std::string cp = p + c.key() + "/";
    INFO("case ", cp, " (", c.value().at("about").get<std::string>(), ")");
    std::vector<T> th, sh;
    const auto t_x = load<T>(cp + "t_x", th);
    const auto s_x = load<T>(cp + "s_x", sh);
    const Index d = t_x.size(1);
    const double data_rms = rms(th, sh);
    std::map<std::string, std::vector<double>> hist;
    const auto got = feature_stats(ctx, c.value().at("prefix").get<std::string>(), c.value().at("kind").get<std::string>(),
                                   t_x, s_x, FeatureStatsOptions{}, &hist);

    // Scalars: the same names both ways, then the values.
    const std::string mp = cp + "metric/", hp = cp + "hist/";
    std::size_t n_metrics = 0, n_hists = 0;
    double worst = 0;
    std::string worst_name;
    for (const std::string& key : fixture().names()) {
      if (key.compare(0, mp.size(), mp) != 0) continue;
      ++n_metrics;
      const std::string name = key.substr(mp.size());
      const double want = fixture().values<double>(key).at(0);
      auto it = got.find(name);
      if (it == got.end()) {
        FAIL_CHECK("dino has no figure '", name, "'");
        continue;
      }
      if (is_count(name)) {
        CHECK_MESSAGE(it->second == want, name, ": dino ", it->second, ", torch ", want);
        continue;
      }
      const double err = std::abs(it->second - want) / std::max(std::abs(want), floor_of(name, data_rms));
      if (err > worst) {
        worst = err;
        worst_name = name;
      }
      CHECK_MESSAGE(err <= rtol, name, ": dino ", it->second, ", torch ", want, " (relative error ", err, ")");
    }
    CHECK(got.size() == n_metrics);
    CHECK(n_metrics == 2 * 11 + 3);
    MESSAGE(cp, ": worst relative error of a figure ", worst, " (", worst_name, ")");

    // Histogram vectors. torch.cdist of more than 25 rows goes through a matrix product in the run's precision,
    // whose squared distances are off by up to a few eps * (|a|^2 + |b|^2): the pairwise distances are judged on
    // that scale.
    const std::vector<double> t_norms = row_norms2(th, d), s_norms = row_norms2(sh, d);
    for (const std::string& key : fixture().names()) {
      if (key.compare(0, hp.size(), hp) != 0) continue;
      ++n_hists;
      const std::string name = key.substr(hp.size());
      const std::vector<double> want = fixture().values<double>(key);
      auto it = hist.find(name);
      if (it == hist.end()) {
        FAIL_CHECK("dino has no histogram vector '", name, "'");
        continue;
      }
      const std::vector<double>& v = it->second;
      REQUIRE_MESSAGE(v.size() == want.size(), name, ": ", v.size(), " values, torch has ", want.size());
      const bool is_pdist = has(name, "pdist()");
      const std::vector<double>& norms = has(name, "/t_x.") ? t_norms : s_norms;
      const std::size_t n = norms.size();
      std::size_t i = 0, j = 1;  // the pair of element k in torch.triu_indices order
      double worst_h = 0;
      std::size_t worst_k = 0;
      for (std::size_t k = 0; k < v.size(); ++k) {
        double err;
        if (is_pdist) {
          const double slack = 8 * eps_t * (norms[i] + norms[j]);
          err = std::abs(v[k] * v[k] - want[k] * want[k]) /
                (rtol * std::max(want[k] * want[k], data_rms * data_rms) + slack);
          if (++j == n) j = ++i + 1;
        } else {
          err = std::abs(v[k] - want[k]) / (rtol * std::max(std::abs(want[k]), floor_of(name, data_rms)));
        }
        if (!(err <= worst_h)) {
          worst_h = err;
          worst_k = k;
        }
      }
      CHECK_MESSAGE(worst_h <= 1.0, name, "[", worst_k, "]: dino ", v[worst_k], ", torch ", want[worst_k],
                    " (", worst_h, " times the tolerance)");
    }
    CHECK(hist.size() == n_hists);
    CHECK(n_hists == 2 * 4 + 3);
  }
}

// The figures that need singular values are absent without them; the others are unchanged.
TEST_CASE_TEMPLATE("feature stats parity: svd = false drops exactly the rank and nPC figures", T, double, float) {
  const std::string cp = std::string(std::is_same_v<T, double> ? "f64/" : "f32/") + "wide/";
  std::vector<T> th, sh;
  const auto t_x = load<T>(cp + "t_x", th);
  const auto s_x = load<T>(cp + "s_x", sh);
  Ctx<B> ctx;
  FeatureStatsOptions o;
  const auto full = feature_stats(ctx, "train", "embed", t_x, s_x, o);
  o.svd = false;
  const auto part = feature_stats(ctx, "train", "embed", t_x, s_x, o);
  CHECK(part.size() == full.size() - 2 * 5);
  for (const auto& [name, value] : full) {
    if (is_count(name)) {
      CHECK_MESSAGE(part.count(name) == 0, name, " is computed without singular values");
    } else {
      REQUIRE_MESSAGE(part.count(name) == 1, name, " is missing without singular values");
      CHECK(part.at(name) == value);
    }
  }
}

}  // namespace
}  // namespace dino::parity_features

// Parity of the probes (spec §10) with the PyTorch runs of make_probe_fixtures.py: the linear probe trained by
// torch.optim.AdamW on F.cross_entropy from a stored init and batch order, the kNN neighbours and torch.mode
// votes, and normalize_data's standardisation, in float64 and float32.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <dino/cpu.hpp>
#include <dino/probe/prober.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"

namespace dino::parity_probe {
namespace {

using json = nlohmann::json;
using B = Cpu;
using Labels = std::vector<std::int64_t>;

const io::Safetensors& fixture() {
  static const io::Safetensors f =
      io::Safetensors::load(std::string(DINO_SOURCE_DIR) + "/tests/parity/fixtures/probe.safetensors");
  return f;
}

template <class T>
std::string prefix() {
  return std::is_same_v<T, double> ? "f64/" : "f32/";
}

template <class T>
Tensor<T, B> load(const std::string& name) {
  const io::TensorData& t = fixture().at(name);
  REQUIRE(t.dtype == io::dtype_of<T>());
  return Tensor<T, B>::from_host(Shape(t.shape), fixture().values<T>(name));
}

// Worst |got - want| / max(|want|, floor) within tol, reported with its element. The floor is the size of the
// values that an element near zero came from: it keeps such an element from asking for more than the run's
// precision.
template <class T>
void expect_close(const std::string& what, const std::vector<T>& got, const std::vector<T>& want, double tol,
                  double floor) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double w = want[i], err = std::abs(static_cast<double>(got[i]) - w) / std::max(std::abs(w), floor);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  MESSAGE(what, ": worst relative error ", worst);
  CHECK_MESSAGE(worst <= tol, what, "[", at, "]: dino ", static_cast<double>(got[at]), ", torch ",
                static_cast<double>(want[at]), " (relative error ", worst, ", tolerance ", tol, ")");
}

// Double: torch's operations in torch's order up to the GEMMs' summation order, over 8 AdamW steps: measured
// 3e-16. Float: measured 1.2e-7. A wrong factor, decay, batch or order costs 1e-3 and more.
TEST_CASE_TEMPLATE("probe parity: the linear probe trains as torch's AdamW on cross-entropy", T, double, float) {
  const json o = json::parse(fixture().metadata.at("lin"));
  const std::string p = prefix<T>() + "lin/";
  const Index e = o.at("embed").get<Index>();
  probe::LinearProbeOptions lo;
  lo.n_classes = o.at("n_classes").get<Index>();
  lo.epochs = o.at("epochs").get<Index>();
  lo.batch_size = o.at("batch_size").get<Index>();
  CHECK(lo.lr == o.at("lr").get<double>());
  CHECK(lo.beta1 == o.at("beta1").get<double>());
  CHECK(lo.beta2 == o.at("beta2").get<double>());
  CHECK(lo.eps == o.at("eps").get<double>());
  CHECK(lo.weight_decay == o.at("weight_decay").get<double>());
  // The fixture's last batch is smaller than the others.
  CHECK(o.at("n_train").get<Index>() % lo.batch_size != 0);

  Ctx<B> ctx;
  probe::LinearProbe<T, B> probe(e, lo);
  NamedStore<T, B>& params = probe.params();
  REQUIRE(params.count() == 2);
  CHECK(params.entry(0).name == "weight");
  CHECK(params.entry(1).name == "bias");
  const auto w0 = fixture().values<T>(p + "init_weight"), b0 = fixture().values<T>(p + "init_bias");
  B::copy_from_host(params.value(0), w0.data(), static_cast<Index>(w0.size()));
  B::copy_from_host(params.value(1), b0.data(), static_cast<Index>(b0.size()));

  const auto train = load<T>(p + "train_x"), valid = load<T>(p + "valid_x");
  const Labels ytr = fixture().values<std::int64_t>("lin/train_y");
  const auto order64 = fixture().values<std::int64_t>("lin/order");
  probe.fit(ctx, train, ytr, std::vector<Index>(order64.begin(), order64.end()));

  const auto values = params.values().to_host();
  const Index nw = params.entry(0).shape.numel();
  const double tol = std::is_same_v<T, double> ? 1e-10 : 1e-5;
  // The parameters are near 0.1 in size (U(+-1/4) at init).
  expect_close(p + "final_weight", std::vector<T>(values.begin(), values.begin() + nw),
               fixture().values<T>(p + "final_weight"), tol, 1e-2);
  expect_close(p + "final_bias", std::vector<T>(values.begin() + nw, values.end()), fixture().values<T>(p + "final_bias"),
               tol, 1e-2);
  // Training moved the weights by far more than the tolerance.
  double moved = 0;
  for (std::size_t i = 0; i < w0.size(); ++i) moved = std::max(moved, std::abs(static_cast<double>(values[i] - w0[i])));
  CHECK(moved > 1e-3);
  CHECK(probe.predict(ctx, valid) == fixture().values<std::int64_t>(p + "valid_pred"));
}

TEST_CASE_TEMPLATE("probe parity: kNN neighbours and votes equal torch's", T, double, float) {
  const json o = json::parse(fixture().metadata.at("knn"));
  const std::string p = prefix<T>() + "knn/";
  const auto train = load<T>(p + "train_x"), valid = load<T>(p + "valid_x");
  const Labels ytr = fixture().values<std::int64_t>("knn/train_y"), yva = fixture().values<std::int64_t>("knn/valid_y");
  Ctx<B> ctx;
  int cases = 0;
  for (const auto& kj : o.at("ks")) {
    const Index k = kj.get<Index>();
    INFO("k = ", k);
    const std::string pk = p + "k" + std::to_string(k) + "/";
    for (Index block : {0, 7}) {
      const auto nb = probe::knn_neighbours(ctx, train, valid, {k, block});
      const auto want = fixture().values<std::int64_t>(pk + "neighbours");
      CHECK(std::vector<std::int64_t>(nb.begin(), nb.end()) == want);
    }
    const Labels pred = probe::knn_predict(ctx, train, ytr, valid, {k, 0});
    CHECK(pred == fixture().values<std::int64_t>(pk + "pred"));
    CHECK(probe::knn_accuracy(ctx, train, ytr, valid, yva, {k, 0}) == fixture().values<double>(pk + "acc").at(0));
    ++cases;
  }
  CHECK(cases == 2);
}

TEST_CASE_TEMPLATE("probe parity: normalize_data standardises as the testbed", T, double, float) {
  const json o = json::parse(fixture().metadata.at("std"));
  const std::string p = prefix<T>() + "std/";
  auto train = load<T>(p + "train_x"), valid = load<T>(p + "valid_x");
  Ctx<B> ctx;
  const auto s = probe::feature_stats(ctx, train);
  // Means and std: chunked sums against torch's, each a few roundings of the features (size 1 to 10) off;
  // the outputs (size 1) carry the mean's error and (x - m) * (1 / s) against torch's (x - m) / s. Measured:
  // 5e-16 in double, 2.3e-7 in float.
  const double tol = std::is_same_v<T, double> ? 1e-13 : 2e-6;
  expect_close(p + "mean", s.mean, fixture().values<T>(p + "mean"), tol, 1);
  expect_close(p + "std", s.std, fixture().values<T>(p + "std"), tol, 1);
  CHECK(s.std[static_cast<std::size_t>(o.at("constant_column").get<Index>())] == T(1));
  probe::normalize_data(ctx, train, valid);
  expect_close(p + "train_out", train.to_host(), fixture().values<T>(p + "train_out"), tol, 1);
  expect_close(p + "valid_out", valid.to_host(), fixture().values<T>(p + "valid_out"), tol, 1);
}

}  // namespace
}  // namespace dino::parity_probe

// Parity of whole encoders with PyTorch (fixtures by make_encoder_fixtures.py): forward output, input gradient,
// every parameter gradient and the BatchNorm running statistics after a train-mode forward, for
// convnet_16_2e, resnet20 (BatchNorm and GroupNorm8), vgg11_bn and resnet18; names, order and counts too.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <dino/cpu.hpp>
#include <dino/encoders/registry.hpp>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"

namespace dino::parity_encoders {
namespace {

using json = nlohmann::json;
using B = Cpu;

template <class T>
const io::Safetensors& fixture() {
  static const io::Safetensors f = io::Safetensors::load(
      std::string(DINO_SOURCE_DIR) + "/tests/parity/fixtures/encoders_" + (std::is_same_v<T, double> ? "f64" : "f32") +
      ".safetensors");
  return f;
}

json metadata(const io::Safetensors& f, const std::string& key) {
  auto it = f.metadata.find(key);
  DINO_CHECK(it != f.metadata.end(), "fixture '", f.origin(), "' has no \"", key, "\" metadata");
  return json::parse(it->second);
}

// SplitMix64's finaliser, written out here (not dino's generator) so that the fixture stays valid whatever
// the library's random numbers become.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// The fixture script's pattern (pattern_unit there): 2 u - 1 with u = (mix64(key << 32 | i) >> 11) 2^-53;
// every operation is exact, so torch and dino start from the same bits.
std::vector<double> pattern_unit(std::uint64_t key, Index n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    const std::uint64_t h = mix64((key << 32) | static_cast<std::uint64_t>(i));
    v[static_cast<std::size_t>(i)] = 2.0 * (static_cast<double>(h >> 11) * 0x1.0p-53) - 1.0;
  }
  return v;
}
// Parameter values (pattern there): conv weights U(+-sqrt(6 / fan_in)), 1-d weights 1 + U(+-0.25), biases U(+-0.25).
std::vector<double> pattern(std::uint64_t key, const Entry& e) {
  std::vector<double> v = pattern_unit(key, e.shape.numel());
  const bool is_weight = e.name.size() >= 6 && e.name.compare(e.name.size() - 6, 6, "weight") == 0;
  if (e.shape.rank() > 1) {
    const double bound = std::sqrt(6.0 / static_cast<double>(e.shape.numel() / e.shape[0]));
    for (auto& x : v) x = x * bound;
  } else {
    for (auto& x : v) x = is_weight ? 1.0 + 0.25 * x : 0.25 * x;
  }
  return v;
}
constexpr std::uint64_t kXKey = 0xF000, kDyKey = 0xF001;
constexpr Index kSamples = 128, kSampleStride = 1000003;

// Double: rtol 1e-10 and atol 1e-10 max(max|ref|, 1), as the layer parity tests (summation orders differ).
// Float: the same form with 5e-5. Torch's own float32 results deviate from its float64 ones by up to 1.1e-5 in
// this measure (the deepest: resnet18's layer3-4 BatchNorms over 8-32 values per channel, and the conv bias
// gradients in front of train-mode BatchNorm, which are zero up to rounding); dino's float deviates about as
// much in other directions, and another GEMM (Eigen or OpenBLAS) changes the summation order again.
template <class T>
struct Tol {
  static constexpr double rel = std::is_same_v<T, double> ? 1e-10 : 5e-5;
};

template <class T>
void expect_close(const std::string& where, const std::vector<T>& got, const std::vector<T>& ref) {
  REQUIRE(got.size() == ref.size());
  double max_ref = 0;
  for (T r : ref) max_ref = std::max(max_ref, std::abs(static_cast<double>(r)));
  const double rtol = Tol<T>::rel, atol = Tol<T>::rel * std::max(max_ref, 1.0);
  double worst = -std::numeric_limits<double>::infinity();
  std::size_t wi = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    const double ex = std::isfinite(g) ? std::abs(g - r) - (atol + rtol * std::abs(r))
                                       : std::numeric_limits<double>::infinity();
    if (ex > worst) {
      worst = ex;
      wi = i;
    }
  }
  if (got.empty() || worst <= 0) {
    CHECK(true);
    return;
  }
  std::ostringstream os;
  os.precision(17);
  os << where << ": worst element " << wi << ": dino " << got[wi] << ", torch " << ref[wi] << " (tolerance "
     << atol + rtol * std::abs(static_cast<double>(ref[wi])) << ")";
  FAIL_CHECK(os.str());
}

// The fixture tensors compared so far, to find any that no comparison reads.
std::set<std::string>& read_keys() {
  static std::set<std::string> keys;
  return keys;
}

// Compares a host tensor with the fixture's key: whole, or its scattered samples and its L2 norm.
template <class T>
void compare(const io::Safetensors& f, const std::string& key, const std::vector<T>& got) {
  read_keys().insert({key, key + "/sample", key + "/norm"});
  if (f.has(key)) {
    expect_close(key, got, f.values<T>(key));
    return;
  }
  if (!f.has(key + "/sample")) {
    FAIL_CHECK("the fixture has no tensor '", key, "'");
    return;
  }
  const Index n = static_cast<Index>(got.size());
  std::vector<T> sample;
  for (Index k = 0; k < std::min(n, kSamples); ++k)
    sample.push_back(got[static_cast<std::size_t>((k * kSampleStride) % n)]);
  expect_close(key + " (samples)", sample, f.values<T>(key + "/sample"));
  double sq = 0;
  for (T g : got) sq += static_cast<double>(g) * g;
  const double norm = std::sqrt(sq), ref = f.values<T>(key + "/norm").at(0);
  INFO(key, " L2 norm: dino ", norm, ", torch ", ref);
  CHECK(std::abs(norm - ref) <= 10 * Tol<T>::rel * std::max(ref, 1.0));
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<std::string> names_of(const std::vector<Entry>& entries) {
  std::vector<std::string> n;
  for (const auto& e : entries) n.push_back(e.name);
  return n;
}
std::vector<std::string> strings(const json& j, const std::string& prefix = "") {
  std::vector<std::string> out;
  for (const auto& s : j) out.push_back(prefix + s.get<std::string>());
  return out;
}

template <class T>
void run_case(const io::Safetensors& f, const std::string& name, const json& c) {
  const std::string tag = name + " (" + io::dtype_name(io::dtype_of<T>()) + ")";
  INFO("case ", tag);
  const std::vector<Index> xs = c.at("x_shape").get<std::vector<Index>>();
  const Shape x_shape(xs);
  ModelState<T, B> st;
  EncoderOptions o;
  o.name = c.at("encoder").get<std::string>();
  o.norm_layer = c.at("norm_layer").get<std::string>();
  o.tiny_input = c.at("tiny_input").get<bool>();
  o.img_size = x_shape[2];
  auto enc = make_encoder(st, o);
  st.finalize();
  // The buffers at their construction values, as in a fresh torch module.
  for (Index id = 0; id < st.buffers.count(); ++id)
    init::constant(st.buffers, id, contains(st.buffers.entry(id).name, "running_var") ? 1.0 : 0.0);
  REQUIRE(names_of(st.params.entries()) == strings(c.at("parameters"), "enc."));
  REQUIRE(names_of(st.buffers.entries()) == strings(c.at("buffers"), "enc."));
  for (Index id = 0; id < st.params.count(); ++id) {
    const auto v = pattern(static_cast<std::uint64_t>(id + 1), st.params.entry(id));
    init::assign(st.params, id, v);
  }
  const auto xd = pattern_unit(kXKey, x_shape.numel());
  std::vector<T> xh(xd.size());
  for (std::size_t i = 0; i < xd.size(); ++i) xh[i] = static_cast<T>(2.0 * xd[i]);
  auto x = Tensor<T, B>::from_host(x_shape, xh);

  enc->train(true);
  Ctx<B> ctx;
  Tensor<T, B> y, dx;
  Saved<T, B> saved;
  enc->forward(ctx, x, y, saved);
  REQUIRE(y.shape() == Shape{x_shape[0], enc->embed_dim()});
  compare(f, name + "/y", y.to_host());
  const auto dyd = pattern_unit(kDyKey, y.numel());
  auto dy = Tensor<T, B>::from_host(y.shape(), std::vector<T>(dyd.begin(), dyd.end()));
  st.params.zero_grad();
  dx.resize(x_shape);
  dx.fill(std::numeric_limits<T>::quiet_NaN());
  enc->backward(ctx, dy, dx, saved);
  compare(f, name + "/dx", dx.to_host());
  const auto grads = st.params.grads().to_host();
  for (const auto& e : st.params.entries()) {
    const auto b = grads.begin() + e.offset;
    compare(f, name + "/grad/" + e.name.substr(4), std::vector<T>(b, b + e.shape.numel()));
  }
  if (c.at("with_buffers").get<bool>()) {
    const auto buffers = st.buffers.values().to_host();
    for (const auto& e : st.buffers.entries()) {
      const auto b = buffers.begin() + e.offset;
      compare(f, name + "/buffer_after/" + e.name.substr(4), std::vector<T>(b, b + e.shape.numel()));
    }
    for (const auto& counter : st.counters) CHECK(counter.second == 1);
  }
}

TEST_CASE_TEMPLATE("parity: encoders (forward, input and parameter gradients, running statistics)", T, float, double) {
  const io::Safetensors& f = fixture<T>();
  CHECK(f.metadata.at("dtype") == (std::is_same_v<T, double> ? "F64" : "F32"));
  const json cases = metadata(f, "cases");
  REQUIRE(cases.size() >= 5);
  read_keys().clear();
  for (auto c = cases.begin(); c != cases.end(); ++c) run_case<T>(f, c.key(), c.value());
  for (const auto& n : f.names()) CHECK_MESSAGE(read_keys().count(n) == 1, "no test reads the fixture tensor ", n);
}

TEST_CASE("parity: encoder parameter and buffer names in torch's order, parameter counts") {
  const io::Safetensors& f = fixture<double>();
  CHECK(f.names() == fixture<float>().names());
  for (const char* key : {"cases", "names", "counts"}) CHECK(f.metadata.at(key) == fixture<float>().metadata.at(key));
  const json named = metadata(f, "names");
  REQUIRE(named.size() >= 5);
  for (auto it = named.begin(); it != named.end(); ++it) {
    INFO("encoder ", it.key());
    const json& c = it.value();
    ModelState<float, B> st;
    EncoderOptions o;
    o.name = c.at("encoder").get<std::string>();
    o.norm_layer = c.at("norm_layer").get<std::string>();
    o.tiny_input = c.at("tiny_input").get<bool>();
    o.img_size = 32;
    make_encoder(st, o);  // names only: nothing is allocated before finalize()
    CHECK(names_of(st.params.entries()) == strings(c.at("parameters")));
    CHECK(names_of(st.buffers.entries()) == strings(c.at("buffers")));
    std::vector<std::string> counters;
    for (const auto& k : st.counters) counters.push_back(k.first);
    CHECK(counters == strings(c.at("counters")));
  }
  // Every count torch reported, for the encoders dino also builds ("name" or "name+override").
  const json counts = metadata(f, "counts");
  for (auto it = counts.begin(); it != counts.end(); ++it) {
    const std::string key = it.key();
    if (key.compare(0, 12, "torchvision.") == 0) continue;
    INFO("encoder ", key);
    EncoderOptions o;
    const std::size_t plus = key.find('+');
    o.name = key.substr(0, plus);
    if (plus != std::string::npos) {
      const std::string extra = key.substr(plus + 1);
      if (extra == "tiny_input")
        o.tiny_input = true;
      else
        o.norm_layer = extra;
    }
    o.img_size = 32;
    ModelState<float, B> st;
    make_encoder(st, o);
    CHECK(st.params.numel() == it.value().get<Index>());
  }
}

}  // namespace
}  // namespace dino::parity_encoders

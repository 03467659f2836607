// Per-layer parity with PyTorch: reads the fixtures that make_fixtures.py wrote (no torch at test time),
// loads each case's parameters and buffers by their state_dict names, runs forward and backward, and
// compares y, dx, every parameter gradient and the buffers after the forward.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <dino/cpu.hpp>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"

namespace dino::parity {

using json = nlohmann::json;
using B = Cpu;

// The fixture in T's precision: layers_f64 for double, layers_f32 for float (loaded once).
template <class T>
const io::Safetensors& fixture() {
  static const io::Safetensors f = io::Safetensors::load(
      std::string(DINO_SOURCE_DIR) + "/tests/parity/fixtures/layers_" + (std::is_same_v<T, double> ? "f64" : "f32") +
      ".safetensors");
  return f;
}

// "[a, b, c]", for messages.
inline std::string join(const std::vector<std::string>& names) {
  std::string s = "[";
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s + "]";
}

struct Case {
  std::string name;
  json options;  // kind, constructor options, train, parameters and buffers in torch's registration order
  std::string kind() const { return options.at("kind").get<std::string>(); }
};

// Every case of a fixture, by name.
inline std::vector<Case> all_cases(const io::Safetensors& f) {
  auto it = f.metadata.find("cases");
  DINO_CHECK(it != f.metadata.end(), "fixture '", f.origin(), "' has no \"cases\" metadata");
  const json all = json::parse(it->second);
  std::vector<Case> out;
  for (auto c = all.begin(); c != all.end(); ++c) out.push_back({c.key(), c.value()});
  return out;
}

// The layer kinds each compiled test file handles, registered before main runs, so that a test can check
// that no fixture case is left without one, whatever order or filter the tests run in.
inline std::set<std::string>& registered_kinds() {
  static std::set<std::string> kinds;
  return kinds;
}
struct Kinds {
  std::vector<std::string> list;
  Kinds(std::initializer_list<const char*> kinds) : list(kinds.begin(), kinds.end()) {
    for (const auto& k : list) registered_kinds().insert(k);
  }
};

// Tolerances: torch.testing.assert_close's defaults for float; for double, rtol 1e-10 and an atol of 1e-10
// times the tensor's largest magnitude (summation orders differ, so cancellations lose relative accuracy),
// at least 1e-10: a mathematically zero tensor (a Linear bias in front of a train-mode BatchNorm) holds only
// rounding noise of order 1e-15, which no relative rule can match.
template <class T>
void expect_close(const std::string& where, const Shape& got_shape, const std::vector<T>& got,
                  const io::TensorData& ref_data, const std::vector<T>& ref) {
  const Shape ref_shape(ref_data.shape);
  if (got_shape != ref_shape) {
    FAIL_CHECK(where, ": shape ", got_shape.str(), ", torch has ", ref_shape.str());
    return;
  }
  REQUIRE(got.size() == ref.size());
  double max_ref = 0;
  for (T r : ref) max_ref = std::max(max_ref, std::abs(static_cast<double>(r)));
  const bool is_double = std::is_same_v<T, double>;
  const double rtol = is_double ? 1e-10 : 1.3e-6;
  const double atol = is_double ? 1e-10 * std::max(max_ref, 1.0) : 1e-5;
  double worst = -std::numeric_limits<double>::infinity();
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    const double excess = std::isfinite(g) ? std::abs(g - r) - (atol + rtol * std::abs(r))
                                           : std::numeric_limits<double>::infinity();
    if (excess > worst) {
      worst = excess;
      worst_i = i;
    }
  }
  if (got.empty() || worst <= 0) {
    CHECK(true);
    return;
  }
  // The worst element's multi-index, row-major.
  std::vector<Index> idx(static_cast<std::size_t>(ref_shape.rank()));
  Index rest = static_cast<Index>(worst_i);
  for (int d = ref_shape.rank() - 1; d >= 0; --d) {
    idx[static_cast<std::size_t>(d)] = rest % ref_shape[d];
    rest /= ref_shape[d];
  }
  std::ostringstream os;
  os.precision(17);
  os << where << ": worst element " << worst_i << " " << Shape(idx).str() << ": dino " << got[worst_i] << ", torch "
     << ref[worst_i] << " (|diff| " << std::abs(static_cast<double>(got[worst_i]) - ref[worst_i]) << ", tolerance "
     << atol + rtol * std::abs(static_cast<double>(ref[worst_i])) << ")";
  FAIL_CHECK(os.str());
}

// Loads the case's parameters, buffers and counters into state by their state_dict names (both ways: no
// fixture tensor without a dino counterpart, no dino entry without a fixture value), sets the mode, runs
// forward and backward and compares everything torch recorded.
template <class T>
void check_case(const io::Safetensors& f, const Case& c, Module<T, B>& m, ModelState<T, B>& st) {
  const std::string p = c.name + "/";
  const std::string tag = "case '" + c.name + "' (" + io::dtype_name(io::dtype_of<T>()) + ")";
  INFO(tag);
  REQUIRE(f.at(p + "x").dtype == io::dtype_of<T>());

  // Names and registration order: torch's named_parameters() and named_buffers() (integer buffers are
  // dino's host counters).
  std::vector<std::string> names, torch_params, torch_buffers, torch_counters;
  for (const auto& e : st.params.entries()) names.push_back(e.name);
  for (const auto& n : c.options.at("parameters")) torch_params.push_back(n.get<std::string>());
  CHECK_MESSAGE(names == torch_params, tag, ": dino's parameters ", join(names), " differ from torch's named_parameters() ",
                join(torch_params));
  for (const auto& n : c.options.at("buffers")) {
    const std::string b = n.get<std::string>();
    (f.at(p + "param/" + b).dtype == io::DType::I64 ? torch_counters : torch_buffers).push_back(b);
  }
  names.clear();
  for (const auto& e : st.buffers.entries()) names.push_back(e.name);
  CHECK_MESSAGE(names == torch_buffers, tag, ": dino's buffers ", join(names), " differ from torch's named_buffers() ",
                join(torch_buffers));
  names.clear();
  for (const auto& e : st.counters) names.push_back(e.first);
  CHECK_MESSAGE(names == torch_counters, tag, ": dino's counters ", join(names), " differ from torch's integer buffers ",
                join(torch_counters));

  const std::string param_prefix = p + "param/";
  std::size_t loaded = 0;
  for (const std::string& key : f.names()) {
    if (key.compare(0, param_prefix.size(), param_prefix) != 0) continue;
    const std::string name = key.substr(param_prefix.size());
    const io::TensorData& td = f.at(key);
    ++loaded;
    if (td.dtype == io::DType::I64) {
      bool found = false;
      for (auto& counter : st.counters)
        if (counter.first == name) {
          counter.second = f.values<std::int64_t>(key).at(0);
          found = true;
        }
      CHECK_MESSAGE(found, tag, ": torch's integer buffer '", name, "' has no dino counter");
      continue;
    }
    NamedStore<T, B>* store = st.params.find(name) >= 0 ? &st.params : st.buffers.find(name) >= 0 ? &st.buffers : nullptr;
    if (!store) {
      FAIL_CHECK(tag, ": torch's state_dict entry '", name, "' has no dino parameter or buffer");
      continue;
    }
    const Index id = store->find(name);
    if (store->entry(id).shape != Shape(td.shape)) {
      FAIL_CHECK(tag, ": '", name, "' has shape ", store->entry(id).shape.str(), " in dino, ", Shape(td.shape).str(),
                 " in torch");
      continue;
    }
    const auto v = f.values<T>(key);
    B::copy_from_host(store->value(id), v.data(), static_cast<Index>(v.size()));
  }
  CHECK(loaded == static_cast<std::size_t>(st.params.count() + st.buffers.count()) + st.counters.size());

  m.train(c.options.at("train").get<bool>());
  m.set_needs_input_grad(true);
  Ctx<B> ctx;
  const io::TensorData& xd = f.at(p + "x");
  const io::TensorData& dyd = f.at(p + "dy");
  auto x = Tensor<T, B>::from_host(Shape(xd.shape), f.values<T>(p + "x"));
  auto dy = Tensor<T, B>::from_host(Shape(dyd.shape), f.values<T>(p + "dy"));
  Tensor<T, B> y, dx;
  Saved<T, B> saved;
  m.forward(ctx, x, y, saved);
  expect_close(tag + " y", y.shape(), y.to_host(), f.at(p + "y"), f.values<T>(p + "y"));
  if (y.shape() != dy.shape()) return;

  st.params.zero_grad();
  dx.resize(x.shape());
  dx.fill(std::numeric_limits<T>::quiet_NaN());  // an element backward never writes shows up as a mismatch
  m.backward(ctx, dy, dx, saved);
  expect_close(tag + " dx", dx.shape(), dx.to_host(), f.at(p + "dx"), f.values<T>(p + "dx"));

  const auto grads = st.params.grads().to_host();
  for (const auto& e : st.params.entries()) {
    const std::string key = p + "grad/" + e.name;
    if (!f.has(key)) {
      FAIL_CHECK(tag, ": torch recorded no gradient for '", e.name, "'");
      continue;
    }
    const auto b = grads.begin() + e.offset;
    expect_close(tag + " grad of " + e.name, e.shape, std::vector<T>(b, b + e.shape.numel()), f.at(key),
                 f.values<T>(key));
  }
  const auto buffers = st.buffers.values().to_host();
  for (const auto& e : st.buffers.entries()) {
    const std::string key = p + "buffer_after/" + e.name;
    const auto b = buffers.begin() + e.offset;
    expect_close(tag + " " + e.name + " after the forward", e.shape, std::vector<T>(b, b + e.shape.numel()), f.at(key),
                 f.values<T>(key));
  }
  for (const auto& counter : st.counters) {
    const std::string key = p + "buffer_after/" + counter.first;
    CHECK_MESSAGE(counter.second == f.values<std::int64_t>(key).at(0), tag, ": ", counter.first,
                  " after the forward is ", counter.second, ", torch has ", f.values<std::int64_t>(key).at(0));
  }
}

// Builds and checks every case of the given kinds; make(state, case) returns the module. Each kind must
// have at least one case in the fixture.
template <class T, class Make>
void run_kinds(const Kinds& kinds, Make make) {
  const io::Safetensors& f = fixture<T>();
  std::map<std::string, int> seen;
  for (const auto& k : kinds.list) seen[k] = 0;
  for (const Case& c : all_cases(f)) {
    auto it = seen.find(c.kind());
    if (it == seen.end()) continue;
    ++it->second;
    ModelState<T, B> st;
    std::unique_ptr<Module<T, B>> m = make(st, c);
    st.finalize();
    check_case(f, c, *m, st);
  }
  for (const auto& [kind, n] : seen) CHECK_MESSAGE(n > 0, "the fixture '", f.origin(), "' has no case of kind ", kind);
}

// Options as JSON numbers and flags.
inline Index opt_index(const Case& c, const char* key) { return c.options.at(key).get<Index>(); }
inline Index opt_index(const Case& c, const char* key, int i) { return c.options.at(key).at(i).get<Index>(); }
inline bool opt_bool(const Case& c, const char* key) { return c.options.at(key).get<bool>(); }
inline double opt_double(const Case& c, const char* key) { return c.options.at(key).get<double>(); }

}  // namespace dino::parity

// Parity of SGD, Adam, AdamW and clip_grad_norm_ with torch.optim / torch.nn.utils (PyTorch 1.13, foreach=False):
// replays the runs that make_optim_fixtures.py recorded (two parameter groups, per-step lr and weight decay, a
// tensor without gradient for two steps) and compares values, optimizer state, step counts and gradient norms.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <dino/cpu.hpp>
#include <dino/optim/clip.hpp>
#include <dino/optim/optimizer.hpp>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"

namespace dino::parity_optim {
namespace {

using json = nlohmann::json;
using B = Cpu;

template <class T>
const io::Safetensors& fixture() {
  static const io::Safetensors f = io::Safetensors::load(std::string(DINO_SOURCE_DIR) + "/tests/parity/fixtures/optim_" +
                                                         (std::is_same_v<T, double> ? "f64" : "f32") + ".safetensors");
  return f;
}

// Relative to max(|torch|, 1). dino runs torch's operations in torch's order, so the measured worst error is
// one ulp (2.2e-16 in double, 1.2e-7 in float; torch's vectorised kernels fuse some multiply-adds and its
// norms sum in another order). The tolerances leave a margin for other compilers and CPUs; a wrong factor,
// step count, group or skipped tensor costs 1e-4 and more.
template <class T>
void expect_close(const std::string& what, const std::vector<T>& got, const std::vector<T>& ref) {
  REQUIRE(got.size() == ref.size());
  const double tol = std::is_same_v<T, double> ? 1e-14 : 1e-6;
  double worst = 0;
  std::size_t worst_i = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double r = ref[i], err = std::abs(static_cast<double>(got[i]) - r) / std::max(std::abs(r), 1.0);
    if (!(err <= worst)) {
      worst = err;
      worst_i = i;
    }
  }
  CHECK_MESSAGE(worst <= tol, what, "[", worst_i, "]: dino ", static_cast<double>(got[worst_i]), ", torch ",
                static_cast<double>(ref[worst_i]), " (relative error ", worst, ")");
}

template <class T>
std::vector<T> slice(const Tensor<T, B>& t, const Entry& e) {
  const std::vector<T> all = t.to_host();
  return std::vector<T>(all.begin() + e.offset, all.begin() + e.offset + e.shape.numel());
}

template <class T>
void replay_all() {
  const io::Safetensors& f = fixture<T>();
  REQUIRE(f.metadata.at("dtype") == (std::is_same_v<T, double> ? "F64" : "F32"));
  const json params = json::parse(f.metadata.at("params"));
  const json steps = json::parse(f.metadata.at("steps"));
  const json cases = json::parse(f.metadata.at("cases"));
  REQUIRE(cases.size() == 8);
  std::set<std::string> read;  // every fixture tensor must be read by some check
  auto values = [&](const std::string& name) {
    read.insert(name);
    return f.values<T>(name);
  };

  for (auto c = cases.begin(); c != cases.end(); ++c) {
    const std::string name = c.key();
    const json& o = c.value();
    INFO("case ", name);
    ModelState<T, B> st;
    for (const auto& p : params) st.params.add(p.at(0).get<std::string>(), Shape(p.at(1).get<std::vector<Index>>()));
    st.finalize();
    for (const Entry& e : st.params.entries()) {
      const auto v = values("init/" + e.name);
      REQUIRE(static_cast<Index>(v.size()) == e.shape.numel());
      B::copy_from_host(st.params.value(st.params.find(e.name)), v.data(), e.shape.numel());
    }

    OptimizerOptions options;
    options.kind = parse_optimizer_kind(o.at("kind").get<std::string>());
    options.momentum = o.value("momentum", 0.9);
    options.beta1 = o.value("beta1", 0.9);
    options.beta2 = o.value("beta2", 0.999);
    options.eps = o.value("eps", 1e-8);
    Optimizer<T, B> opt(st.params, options);
    const json& groups = o.at("state_dict_groups");
    for (int g = 0; g < 2; ++g) {
      std::vector<std::string> torch_names, ours;
      for (const auto& n : groups.at(g)) torch_names.push_back(n.get<std::string>());
      for (Index id : opt.groups().members(static_cast<ParamGroup>(g))) ours.push_back(st.params.entry(id).name);
      CHECK(ours == torch_names);
    }

    Ctx<B> ctx;
    const double clip = o.at("clip").get<double>();
    const auto norms = values(name + "/norm");
    REQUIRE(norms.size() == steps.size());
    for (std::size_t s = 0; s < steps.size(); ++s) {
      CAPTURE(s);
      std::vector<char> active(static_cast<std::size_t>(st.params.count()), 0);
      // A tensor without gradient (torch's None) holds NaN here: any use of it by the norm, the clipping or
      // the optimizer would show.
      st.params.grads().fill(std::numeric_limits<T>::quiet_NaN());
      for (const auto& n : steps[s]) {
        const Index id = st.params.find(n.get<std::string>());
        REQUIRE(id >= 0);
        active[static_cast<std::size_t>(id)] = 1;
        const auto g = values("grad/" + std::to_string(s) + "/" + n.get<std::string>());
        B::copy_from_host(st.params.grad(id), g.data(), static_cast<Index>(g.size()));
      }
      const double norm = clip > 0 ? clip_grad_norm(ctx, st.params, clip, active) : grad_norm(ctx, st.params, active);
      CHECK(norm == doctest::Approx(static_cast<double>(norms[s])).epsilon(std::is_same_v<T, double> ? 1e-13 : 1e-6));
      const json& h = o.at("hyper").at(s);
      opt.step(ctx, {h.at("lr_w").get<double>(), h.at("wd_w").get<double>()},
               {h.at("lr_b").get<double>(), h.at("wd_b").get<double>()}, active);
    }

    for (const Entry& e : st.params.entries()) {
      const Index id = st.params.find(e.name);
      CHECK_MESSAGE(opt.step_count(id) == o.at("step_counts").at(e.name).get<std::int64_t>(), "step count of ", e.name);
      expect_close(name + " " + e.name, slice(st.params.values(), e), values(name + "/final/" + e.name));
      for (const std::string& key : opt.state_names())
        expect_close(name + " " + e.name + " " + key, slice(opt.state(key), e),
                     values(name + "/state/" + e.name + "/" + key));
    }
  }
  const std::vector<std::string> all = f.names();
  for (const std::string& n : all) CHECK_MESSAGE(read.count(n) == 1, "fixture tensor ", n, " is checked by no test");
}

TEST_CASE_TEMPLATE("parity: SGD, Adam, AdamW and clip_grad_norm_ replay torch.optim", T, float, double) {
  replay_all<T>();
}

}  // namespace
}  // namespace dino::parity_optim

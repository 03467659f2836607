// Whole training steps against PyTorch: every case folder under tests/parity/fixtures/steps (written by
// make_step_fixtures.py with Part A's decisions) is replayed here in double and in float, and every final
// parameter, buffer and counter of student and teacher, and every per-step loss, must match.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <dino/cpu.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "dino/train/replay.hpp"

namespace dino::parity {
namespace {

namespace fs = std::filesystem;

// The committed cases, or those under $DINO_STEP_FIXTURES (e.g. the large vgg11_bn case that
// make_step_fixtures.py --large writes, too big to commit).
std::vector<fs::path> step_cases() {
  std::vector<fs::path> out;
  const char* env = std::getenv("DINO_STEP_FIXTURES");
  const fs::path root = env && *env ? fs::path(env) : fs::path(DINO_SOURCE_DIR) / "tests/parity/fixtures/steps";
  if (fs::exists(root))
    for (const auto& d : fs::directory_iterator(root))
      if (d.is_directory()) out.push_back(d.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Double: 1e-9 relative to the tensor's largest magnitude (at least 1); float: 1e-4 the same way. A
// per-tensor scale, because a parameter that is near zero carries the rounding noise of its neighbours.
template <class T>
void compare_results(const std::string& where, const io::Safetensors& got, const io::Safetensors& ref) {
  const double tol = std::is_same_v<T, double> ? 1e-9 : 1e-4;
  for (const std::string& name : ref.names()) {
    CAPTURE(where);
    CAPTURE(name);
    REQUIRE(got.has(name));
    const auto& rt = ref.at(name);
    REQUIRE(got.at(name).shape == rt.shape);
    const std::vector<double> r = ref.values<double>(name), g = got.values<double>(name);
    double scale = 1;
    for (double v : r)
      if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
    double worst = 0;
    std::size_t worst_i = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (std::isnan(r[i]) && std::isnan(g[i])) continue;
      const double err = std::isfinite(g[i]) ? std::abs(g[i] - r[i]) : INFINITY;
      if (err > worst) worst = err, worst_i = i;
    }
    CAPTURE(worst_i);
    CHECK_MESSAGE(worst <= tol * scale, "max error ", worst, " at ", worst_i, " (ref ", r.empty() ? 0 : r[worst_i],
                  ", got ", g.empty() ? 0 : g[worst_i], "), allowed ", tol * scale);
  }
  // Nothing the reference lacks: the replay writes exactly the reference's tensors.
  for (const std::string& name : got.names()) {
    CAPTURE(name);
    CHECK((ref.has(name) || name == "CE" || name == "KL" || name == "H_pred" || name == "MSE"));
  }
}

template <class T>
void run_case(const fs::path& dir) {
  std::ifstream in(dir / "cfg.json");
  REQUIRE(in.good());
  const nlohmann::json j = nlohmann::json::parse(in);
  Config cfg;
  ConfigJsonReader::read_into(cfg, j, (dir / "cfg.json").string(), {"steps_per_epoch"});
  const auto init = io::Safetensors::load((dir / "init.safetensors").string());
  const auto batches = io::Safetensors::load((dir / "batches.safetensors").string());
  const auto ref = io::Safetensors::load((dir / (std::is_same_v<T, double> ? "expected_f64.safetensors" : "expected_f32.safetensors")).string());
  Ctx<Cpu> ctx;
  const io::Safetensors got = replay<T, Cpu>(ctx, cfg, j.at("steps_per_epoch").get<std::int64_t>(), init, batches);
  compare_results<T>(dir.filename().string(), got, ref);
}

TEST_CASE_TEMPLATE("whole training steps match PyTorch", T, double, float) {
  const auto cases = step_cases();
  REQUIRE((cases.size() >= 10 || std::getenv("DINO_STEP_FIXTURES")));
  for (const auto& dir : cases) run_case<T>(dir);
}

}  // namespace
}  // namespace dino::parity

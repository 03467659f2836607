// dino: trains a vision encoder with DINO as the testbed's dino.py does (spec §1, §9): the same flags,
// defaults and JSON configurations; results in <results_dir>/DINO/<run id>/ (config.json, metrics.jsonl,
// metrics.csv, TensorBoard events, summary.json, last.safetensors). Exit codes: 0 done, 1 runtime error,
// 2 usage error (nothing is written then).
#include <dino/cpu.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

#include "dino/train/cli.hpp"
#include "dino/train/run.hpp"

namespace {

using namespace dino;

const std::set<std::string>& kNotOffered = dino_keys_not_offered();

std::string run_id() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::gmtime(&now));
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "-%04x", static_cast<unsigned>(Generator(static_cast<std::uint64_t>(now), ::getpid()).below(65536)));
  return std::string(buf) + suffix;
}

std::string results_root(const Config& c) {
  if (!c.results_dir.empty()) return c.results_dir;
  if (const char* env = std::getenv("DINO_RESULTS"); env && *env) return env;
  return "results";
}

// One line per epoch, redrawn in place on a terminal: step, loss, images/s, ETA.
class Progress {
 public:
  explicit Progress(std::int64_t bs) : bs_(bs), tty_(::isatty(STDERR_FILENO) != 0) {}
  void step(std::int64_t epoch, std::int64_t b, std::int64_t steps, const StepResult& r) {
    using clock = std::chrono::steady_clock;
    if (b == 0) start_ = clock::now();
    const double s = std::chrono::duration<double>(clock::now() - start_).count();
    const double rate = s > 0 ? static_cast<double>((b + 1) * bs_) / s : 0.0;
    const double eta = b + 1 > 0 ? s / static_cast<double>(b + 1) * static_cast<double>(steps - b - 1) : 0.0;
    const bool last = b + 1 == steps;
    if (!tty_ && !last) return;
    std::fprintf(stderr, "%sepoch %lld [%lld/%lld] loss %.4f  %.0f img/s  ETA %.0fs%s", tty_ ? "\r" : "",
                 static_cast<long long>(epoch), static_cast<long long>(b + 1), static_cast<long long>(steps), r.loss.loss,
                 rate, eta, last || !tty_ ? "\n" : "   ");
  }

 private:
  std::int64_t bs_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

// The last validation's probe accuracies, one line per network (what scripts/demo.sh shows).
std::map<std::string, double> last_probe;

void print_metrics(const std::string& when, const std::map<std::string, double>& m) {
  std::fprintf(stderr, "validation (%s):", when.c_str());
  for (const char* k : {"valid/loss", "probe/student", "probe/teacher", "probe/student/knn", "probe/teacher/knn"})
    if (auto it = m.find(k); it != m.end()) std::fprintf(stderr, "  %s %.4f", k, it->second);
  std::fprintf(stderr, "\n");
  for (const auto& [k, v] : m)
    if (k.rfind("probe/", 0) == 0) last_probe[k] = v;
}

void print_final(const std::string& dataset) {
  if (last_probe.empty()) return;
  const auto get = [](const std::string& k) {
    auto it = last_probe.find(k);
    return it == last_probe.end() ? std::string("-") : std::to_string(it->second).substr(0, 6);
  };
  std::printf("probe accuracy on the %s test split (standardised features in brackets):\n", dataset.c_str());
  for (const char* who : {"teacher", "student"})
    std::printf("  %s: kNN %s (%s)  linear %s (%s)\n", who, get(std::string("probe/") + who + "/knn").c_str(),
                get(std::string("probe/norm/") + who + "/knn").c_str(), get(std::string("probe/") + who).c_str(),
                get(std::string("probe/norm/") + who).c_str());
}

template <class T>
void train(const Config& c, const std::string& dir) {
  Progress progress(c.bs_train);
  RunCallbacks cb;
  cb.on_step = [&](std::int64_t e, std::int64_t b, std::int64_t steps, const StepResult& r) { progress.step(e, b, steps, r); };
  cb.on_validation = print_metrics;
  TrainingRun<T, Cpu> run(c, dir, cb);
  run.fit();
}

}  // namespace

int main(int argc, char** argv) {
  CommandLine cl;
  try {
    cl = parse_command_line(std::vector<std::string>(argv + 1, argv + argc), {}, nullptr, kNotOffered);
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  if (cl.help) {
    std::cout << cli_help("dino", "Trains a vision encoder with DINO (self-distillation with no labels).", kNotOffered);
    return 0;
  }
  Config c = cl.config;
  try {
    // Spec A7: an unset seed is drawn from the clock and recorded.
    if (!c.seed) c.seed = static_cast<std::int64_t>(std::time(nullptr));
    if (c.n_threads > 0) Ctx<Cpu>(static_cast<int>(c.n_threads));
    const std::string dir = results_root(c) + "/DINO/" + run_id();
    std::filesystem::create_directories(dir);
    {
      std::ofstream f(dir + "/config.json");
      f << to_json(c).dump(2) << "\n";
      DINO_CHECK(f.good(), "cannot write '", dir, "/config.json'");
    }
    std::fprintf(stderr, "dino: results in %s\n", dir.c_str());
    if (c.float64) train<double>(c, dir);
    else train<float>(c, dir);
    print_final(c.dataset);
    std::printf("results: %s (config.json, metrics.jsonl, metrics.csv, TensorBoard events, summary.json, plot.svg, "
                "last.safetensors)\n", dir.c_str());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

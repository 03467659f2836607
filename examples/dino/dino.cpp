// dino: trains a vision encoder with DINO as the testbed's dino.py does (spec §1, §9): the same flags,
// defaults and JSON configurations; results in <results_dir>/DINO/<run id>/. --resume <run dir or checkpoint>
// continues a run; SIGINT/SIGTERM save the run's position and stop it. Exit codes: 0 done, 1 runtime error,
// 2 usage error, 128 + signal number when a signal stopped the run. The run's folder appears only once its
// data, models and checkpoints have loaded: an error before that leaves nothing behind.
#include <dino/cpu.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "dino/train/cli.hpp"
#include "train_run.hpp"

namespace {

using namespace dino;
namespace fs = std::filesystem;

// What may change when a run resumes: where it runs and where its data is, not what it computes.
const std::set<std::string> kResumeKeys = {"n_threads", "n_workers", "data_dir", "force_cpu"};

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_signal(int s) { g_signal = s; }

// The first SIGINT/SIGTERM asks the run to stop after the current step (saving its position); a second one
// kills the process at once (the handler resets itself). A kill during a save leaves the previous file intact.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

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

void print_final(const std::string& dataset, const cli_tool::ProbeResults& probes) {
  if (probes.empty()) return;
  const auto get = [&](const std::string& k) {
    auto it = probes.find(k);
    return it == probes.end() ? std::string("-") : std::to_string(it->second).substr(0, 6);
  };
  std::printf("probe accuracy on the %s test split (standardised features in brackets):\n", dataset.c_str());
  for (const char* who : {"teacher", "student"})
    std::printf("  %s: kNN %s (%s)  linear %s (%s)\n", who, get(std::string("probe/") + who + "/knn").c_str(),
                get(std::string("probe/norm/") + who + "/knn").c_str(), get(std::string("probe/") + who).c_str(),
                get(std::string("probe/norm/") + who).c_str());
}

// --resume: the checkpoint to continue from (a run folder means its last.safetensors) and the run's
// configuration as recorded in it, with the keys of kResumeKeys given on the command line applied.
struct Resume {
  std::string checkpoint, dir;
  Config config;
};

Resume resolve_resume(const std::string& arg, const CommandLine& cl) {
  if (!cl.from_json.empty()) throw UsageError("--resume continues a run with its recorded configuration: --from_json cannot be given with it");
  for (const std::string& k : cl.given)
    if (!kResumeKeys.count(k))
      throw UsageError("--resume continues a run with its recorded configuration: --" + k +
                       " cannot be given with it (allowed: --n_threads, --n_workers, --data_dir, --force_cpu)");
  Resume r;
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {
    r.dir = arg;
    r.checkpoint = (fs::path(arg) / "last.safetensors").string();
    if (!fs::is_regular_file(r.checkpoint, ec))
      throw UsageError("--resume '" + arg + "': the folder has no last.safetensors (not a run folder, or a run without checkpoints)");
  } else if (fs::is_regular_file(arg, ec)) {
    r.checkpoint = arg;
    r.dir = fs::path(arg).parent_path().string();
    if (r.dir.empty()) r.dir = ".";
  } else {
    throw UsageError("--resume '" + arg + "': no such run folder or checkpoint");
  }
  return r;
}

Config resumed_config(const Resume& r, const CommandLine& cl) {
  const io::Safetensors f = io::Safetensors::load(r.checkpoint);
  auto it = f.metadata.find("config");
  DINO_CHECK(it != f.metadata.end(), "--resume '", r.checkpoint, "': the checkpoint records no configuration");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    fail("--resume '", r.checkpoint, "': its configuration metadata is not valid JSON");
  }
  const nlohmann::json given = to_json(cl.config);
  for (const std::string& k : cl.given) j[k] = given.at(k);
  Config c;
  ConfigJsonReader::read_into(c, j, r.checkpoint + " (configuration)");
  DINO_CHECK(c.seed.has_value(), "--resume '", r.checkpoint, "': the recorded configuration has no seed");
  return c;
}

// A combination of flags that gives no model (VGG on 28x28 crops, --enc_norm_layer on Flatten) is a usage
// error, reported before anything is written. (TrainingRun repeats this shape-only check for library users.)
void check_configured_model(const Config& c) {
  try {
    check_model_config<float, Cpu>(c, multicrop_preset(c.mc).sizes());
  } catch (const Error& e) {
    throw UsageError("--enc " + c.enc + " with --mc " + c.mc + ": " + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CommandLine cl;
  std::map<std::string, std::string> extra;
  Resume resume;
  try {
    cl = parse_command_line(std::vector<std::string>(argv + 1, argv + argc), {"resume"}, &extra);
    if (extra.count("resume")) {
      resume = resolve_resume(extra["resume"], cl);
    } else if (!cl.help) {
      check_configured_model(cl.config);
    }
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  if (cl.help) {
    std::cout << cli_help("dino", "Trains a vision encoder with DINO (self-distillation with no labels).");
    std::cout << "\nResuming:\n  --resume RUN         continue an interrupted run: its folder (last.safetensors) or a "
                 "checkpoint;\n                       only --n_threads, --n_workers, --data_dir, --force_cpu may be "
                 "given with it\n";
    return 0;
  }
  try {
    Config c = cl.config;
    std::string dir;
    if (!resume.checkpoint.empty()) {
      c = resumed_config(resume, cl);
      dir = resume.dir;
    } else {
      // Spec A7: an unset seed is drawn from the clock and recorded.
      if (!c.seed) c.seed = static_cast<std::int64_t>(std::time(nullptr));
      dir = results_root(c) + "/DINO/" + run_id();
    }
    if (c.n_threads > 0) Ctx<Cpu>(static_cast<int>(c.n_threads));
    install_signal_handlers();
    const std::function<bool()> should_stop = [] { return g_signal != 0; };
    cli_tool::ProbeResults probes;
    bool finished = false;
#ifdef DINO_CLI_WITH_CUDA
    if (!c.force_cpu && cli_tool::cuda_device_count() > 0)
      finished = cli_tool::train_cuda(c, dir, resume.checkpoint, should_stop, probes);
    else
#endif
      finished = cli_tool::train<Cpu>(c, dir, resume.checkpoint, should_stop, probes);
    if (!finished) {
      std::fprintf(stderr, "dino: stopped by signal %d; the run's position is in %s/last.safetensors; continue with: "
                   "dino --resume %s\n", static_cast<int>(g_signal), dir.c_str(), dir.c_str());
      return 128 + static_cast<int>(g_signal);
    }
    print_final(c.dataset, probes);
    std::printf("results: %s\n", dir.c_str());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

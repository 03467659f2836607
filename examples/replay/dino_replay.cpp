// dino_replay: runs recorded DINO training steps and writes the final state and the per-step losses, so
// that a step here can be checked against another implementation (see include/dino/train/replay.hpp).
//   dino_replay --config cfg.json --init init.safetensors --batches batches.safetensors --out out.safetensors
//               [--float64] [--force_cpu]
// cfg.json holds the dino command's keys (missing ones take its defaults) plus steps_per_epoch.
#include <CLI/CLI.hpp>
#include <dino/cpu.hpp>

#include <fstream>
#include <iostream>

#include "replay_run.hpp"

int main(int argc, char** argv) {
  using namespace dino;
  replay_tool::Args a;
  CLI::App app{"Replays recorded DINO training steps (see include/dino/train/replay.hpp)."};
  app.add_option("--config", a.config, "JSON configuration: the dino command's keys plus steps_per_epoch")->required();
  app.add_option("--init", a.init, "Initial state: student.* and teacher.* tensors")->required();
  app.add_option("--batches", a.batches, "Crops (and targets) of every step: step<k>/crop<i>, step<k>/target")->required();
  app.add_option("--out", a.out, "Output safetensors file (written atomically)")->required();
  app.add_flag("--float64", a.float64, "Compute in double precision");
  app.add_flag("--force_cpu", a.force_cpu, "Use the CPU even when a GPU is visible");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  try {
    std::ifstream in(a.config);
    DINO_CHECK(in.good(), "cannot open --config '", a.config, "'");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      fail("--config '", a.config, "' is not valid JSON (syntax error at byte ", e.byte, ")");
    }
    Config cfg;
    ConfigJsonReader::read_into(cfg, j, a.config, {"steps_per_epoch"});
    DINO_CHECK(j.contains("steps_per_epoch") && j["steps_per_epoch"].is_number_integer() &&
                   j["steps_per_epoch"].get<std::int64_t>() >= 1,
               "--config '", a.config, "' needs an integer steps_per_epoch >= 1");
    const std::int64_t spe = j["steps_per_epoch"].get<std::int64_t>();
#ifdef DINO_REPLAY_WITH_CUDA
    if (!a.force_cpu && !cfg.force_cpu && replay_tool::cuda_device_count() > 0) {
      replay_tool::run_cuda(a, cfg, spe);
      return 0;
    }
#endif
    if (cfg.n_threads > 0) Ctx<Cpu>(static_cast<int>(cfg.n_threads));
    replay_tool::run<Cpu>(a, cfg, spe);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

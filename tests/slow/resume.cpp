// --resume (issue 5): a run stopped between two steps (mid-epoch, after an epoch's last batch, after an
// epoch's end) and resumed from last.safetensors ends with the same files, byte for byte, as an uninterrupted
// run: the checkpoints (models, optimizer, position, best values), metrics.jsonl/csv, summary.json.
#include <doctest/doctest.h>

#include <dino/cpu.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "../support/temp_dir.hpp"
#include "dino/train/run.hpp"

namespace dino {
namespace {

namespace fs = std::filesystem;

Config tiny_config() {
  Config c;
  c.seed = 5;
  c.enc = "convnet_16_1";
  c.mc = "2x28+4x28";
  c.per_crop_augs = {"dino"};
  c.hid_dims = {32};
  c.l2bot_dim = 16;
  c.out_dim = 64;
  c.n_samples = 192;
  c.bs_train = 32;  // 6 batches per epoch
  c.n_epochs = 3;
  c.n_workers = 1;
  c.validation_freq = {false, 0};
  c.save_ckpt = {"loss_max"};
  return c;
}

std::string bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The files of a run folder, name -> bytes (event files aside: they are named by the clock; config.json
// without its line "logdir", which names the folder).
std::map<std::string, std::string> files_of(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.find("tfevents") != std::string::npos) continue;
    std::string data = bytes(e.path());
    if (n == "config.json") {
      const std::size_t at = data.find("\n  \"logdir\": ");
      REQUIRE(at != std::string::npos);
      data.erase(at, data.find('\n', at + 1) - at);
    }
    out[n] = data;
  }
  return out;
}

// Runs c in dir, stopping at the `stop_at`-th poll of should_stop (0: never), then resumes until the end.
void run_with_stop(const Config& c, const fs::path& dir, int stop_at) {
  int polls = 0;
  RunCallbacks cb;
  cb.should_stop = [&] { return ++polls == stop_at; };
  bool finished = TrainingRun<float, Cpu>(c, dir.string(), cb).fit();
  CHECK(finished == (stop_at == 0));
  if (!finished) {
    REQUIRE(fs::exists(dir / "last.safetensors"));
    CHECK(TrainingRun<float, Cpu>(c, dir.string(), {}, (dir / "last.safetensors").string()).fit());
  }
}

void check_resume(const Config& c, const std::vector<int>& stops) {
  testing::TempDir tmp("dino-resume");
  const fs::path ref = tmp / "uninterrupted";
  run_with_stop(c, ref, 0);
  const auto expected = files_of(ref);
  REQUIRE(expected.count("last.safetensors"));
  for (int stop : stops) {
    CAPTURE(stop);
    const fs::path dir = tmp / ("stopped-" + std::to_string(stop));
    run_with_stop(c, dir, stop);
    const auto got = files_of(dir);
    CHECK(got.size() == expected.size());
    for (const auto& [name, data] : expected) {
      CAPTURE(name);
      REQUIRE(got.count(name));
      CHECK(got.at(name) == data);
    }
  }
}

// Polls per epoch: one after each of its 6 steps, one after its end. So poll 4 stops mid-epoch 0, poll 6
// after epoch 0's last batch (before its end), poll 7 after epoch 0's end, poll 16 in the middle of epoch 2.
TEST_CASE("resume: interrupted runs end byte-identical to an uninterrupted one") {
  check_resume(tiny_config(), {4, 6, 7, 16});
}

TEST_CASE("resume: with gradient accumulation, a teacher copied every epoch and validations") {
  Config c = tiny_config();
  c.batchaccum = 2;  // 3 optimizer steps per epoch: polls after each, and after the epoch's end
  c.t_mode = "prev_epoch";
  c.validation_freq = {false, 2};
  c.probing_epochs = 0;  // the probes' own determinism is tested in tests/unit/probe.cpp; here they would only cost
  c.probing_k = 0;
  c.bs_eval = 500;  // the validation's feature figures grow with (bs_eval x crops)^2
  c.log_every = 2;
  c.save_ckpt = {"loss_max", "rank_min"};
  check_resume(c, {2, 8});  // mid-epoch 0; after epoch 1's end (its validation)
}

TEST_CASE("resume: a run that died in its validation after training, its row written, logs that row once") {
  Config c = tiny_config();
  c.n_epochs = 2;
  c.validation_freq = {false, 2};  // the last epoch's end and the end of fit both validate, at the same step
  c.probing_epochs = 0;
  c.probing_k = 0;
  c.bs_eval = 500;  // the validation's feature figures grow with (bs_eval x crops)^2
  testing::TempDir tmp("dino-resume-final");
  const fs::path ref = tmp / "uninterrupted", dir = tmp / "crashed";
  CHECK(TrainingRun<float, Cpu>(c, ref.string()).fit());
  RunCallbacks cb;
  cb.on_validation = [](const std::string& when, const std::map<std::string, double>&) {
    if (when == "end") throw std::runtime_error("killed");
  };
  const auto crashing_run = [&] { TrainingRun<float, Cpu>(c, dir.string(), cb).fit(); };
  CHECK_THROWS_AS(crashing_run(), std::runtime_error);
  CHECK(TrainingRun<float, Cpu>(c, dir.string(), {}, (dir / "last.safetensors").string()).fit());
  const auto expected = files_of(ref), got = files_of(dir);
  CHECK(got.size() == expected.size());
  for (const auto& [name, data] : expected) {
    CAPTURE(name);
    REQUIRE(got.count(name));
    CHECK(got.at(name) == data);
  }
}

TEST_CASE("resume: a finished run and a foreign file are refused with a clear message") {
  testing::TempDir tmp("dino-resume-done");
  Config c = tiny_config();
  c.n_epochs = 1;
  const fs::path dir = tmp / "run";
  CHECK(TrainingRun<float, Cpu>(c, dir.string()).fit());
  try {
    TrainingRun<float, Cpu> run(c, dir.string(), {}, (dir / "last.safetensors").string());
    FAIL("a finished run was resumed");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("is complete") != std::string::npos);
  }
  Config other = c;
  other.out_dim = 32;
  const auto resume_other = [&] { TrainingRun<float, Cpu>(other, tmp / "x", {}, (dir / "last.safetensors").string()); };
  CHECK_THROWS_AS(resume_other(), Error);
}

}  // namespace
}  // namespace dino

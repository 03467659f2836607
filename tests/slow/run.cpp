// A small training run end to end on Fashion-MNIST (the Debian package): training, validation before,
// during and after, probes, the metric files and the last checkpoint.
#include <doctest/doctest.h>

#include <unistd.h>

#include <dino/cpu.hpp>
#include <filesystem>

#include "dino/train/run.hpp"

namespace dino {
namespace {

namespace fs = std::filesystem;

TEST_CASE("run: two epochs on a Fashion-MNIST subset write metrics and a checkpoint") {
  Config c;
  c.seed = 3;
  c.enc = "convnet_16_1";
  c.mc = "2x28";
  c.hid_dims = {32};
  c.l2bot_dim = 16;
  c.out_dim = 64;
  c.n_samples = 256;
  c.bs_train = 64;
  c.bs_eval = 1000;
  c.n_epochs = 2;
  c.n_workers = 1;
  c.probing_epochs = 1;
  c.probing_k = 5;
  c.opt_lr = "0.001";
  c.validation_freq = {false, 2};  // validations before training, after epoch 2 and after fit
  const fs::path dir = fs::temp_directory_path() / ("dino-run-" + std::to_string(::getpid()));
  int validations = 0;
  RunCallbacks cb;
  cb.on_validation = [&](const std::string&, const std::map<std::string, double>&) { ++validations; };
  {
    TrainingRun<float, Cpu> run(c, dir.string(), cb);
    CHECK(run.trainer().steps_per_epoch() == 4);
    run.fit();
  }
  CHECK(validations == 3);
  const auto rows = io::MetricsLogger::read_jsonl((dir / "metrics.jsonl").string());
  REQUIRE(rows.size() == 8 + 3);  // 8 training steps (log_every 1), 3 validations
  CHECK(rows.front().at("step") == 0);
  CHECK(rows.front().contains("valid/loss"));
  CHECK(rows.front().contains("probe/student"));
  CHECK(rows.front().contains("probe/norm/teacher/knn"));
  bool train_row = false;
  for (const auto& r : rows)
    if (r.contains("train/loss")) {
      train_row = true;
      CHECK(r.contains("hparams/lr"));
      CHECK(r.contains("train/H_preds/global1"));
      CHECK(std::isfinite(r.at("train/loss").get<double>()));
    }
  CHECK(train_row);
  const double acc = rows.back().at("probe/teacher/knn").get<double>();
  CHECK(acc > 0.5);  // 10 classes: far above chance even for a barely trained ConvNet
  CHECK(fs::exists(dir / "metrics.csv"));
  CHECK(fs::exists(dir / "summary.json"));
  const auto ckpt = io::Safetensors::load((dir / "last.safetensors").string());
  CHECK(ckpt.has("student.enc.conv1.weight"));
  CHECK(ckpt.has("teacher.head.cent"));
  CHECK(ckpt.metadata.at("format") == "pt");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dino

// End to end on a small Fashion-MNIST subset (issue 5): every --t_mode, --s_mode, --loss, --opt, the probes,
// the trackers and the savers run and write what they should, with the metric names of spec §11.
#include <doctest/doctest.h>

#include <dino/cpu.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <set>

#include "../support/temp_dir.hpp"
#include "dino/io/npy.hpp"
#include "dino/train/run.hpp"

namespace dino {
namespace {

namespace fs = std::filesystem;

Config small_config() {
  Config c;
  c.seed = 11;
  c.enc = "convnet_16_1";
  c.mc = "2x28+4x28";
  c.hid_dims = {16};
  c.l2bot_dim = 8;
  c.out_dim = 32;
  c.n_samples = 96;
  c.bs_train = 16;  // 6 steps per epoch
  c.n_epochs = 1;
  c.n_workers = 0;
  c.validation_freq = {false, 0};
  c.log_every = 2;
  return c;
}

// The names of every row of metrics.jsonl.
std::set<std::string> metric_names(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& row : io::MetricsLogger::read_jsonl((dir / "metrics.jsonl").string()))
    for (auto it = row.begin(); it != row.end(); ++it) out.insert(it.key());
  return out;
}

std::set<std::string> fit(const Config& c, const fs::path& dir) {
  CHECK(TrainingRun<float, Cpu>(c, dir.string()).fit());
  CHECK(fs::exists(dir / "last.safetensors") == (c.save_ckpt != std::vector<std::string>{"none"}));
  CHECK(fs::exists(dir / "init.safetensors"));
  const std::set<std::string> names = metric_names(dir);
  // Always: the losses, the hyper-parameters, the accuracy, the parameter and the feature figures (§11).
  for (const char* n : {"train/loss", "train/s_acc", "hparams/lr", "hparams/wd", "hparams/t_mom", "hparams/t_cmom",
                        "hparams/s_cmom", "hparams/t_temp", "hparams/s_temp", "hparams/t_cent.norm()",
                        "hparams/t_cent.mean()", "params/norm(grad)", "params/enc/cos(teach, stud)",
                        "params/head/norm(teach - init)", "params/cos(grad, diff)", "params/rms(stud - init)",
                        "train/feat/embed/t_x.rank()", "train/feat/proje/s_x.nPC(var_explained=0.99)",
                        "train/feat/logit/s_x.corr().rank()", "train/feat/logit/l2(t_x,s_x).mean()",
                        "train/feat/embed/cos(t_x,s_x).mean()", "train/feat/proje/t_x.pdist().mean()"}) {
    CAPTURE(n);
    CHECK(names.count(n));
  }
  return names;
}

TEST_CASE("modes: each teacher rule, student mode, loss and optimizer trains and logs its metrics") {
  testing::TempDir tmp("dino-modes");
  struct Case {
    const char* name;
    std::function<void(Config&)> set;
    std::vector<std::string> expect, absent;
  };
  const std::vector<Case> cases = {
      {"ema_CE_adamw", [](Config&) {}, {"train/CE", "train/KL", "train/H_preds/local4", "train/H_targs/global2"}, {"train/MSE"}},
      {"prev_epoch_KL_sgd", [](Config& c) { c.t_mode = "prev_epoch"; c.loss = "KL"; c.opt = "sgd"; }, {"train/KL"}, {}},
      {"no_update_MSE_adam", [](Config& c) { c.t_mode = "no_update"; c.loss = "MSE"; c.opt = "adam"; c.t_eval = true; },
       {"train/MSE"}, {"train/CE", "train/H_preds"}},
      {"H_pred_all", [](Config& c) { c.loss = "H_pred"; c.loss_pairing = "all"; }, {"train/H_preds"}, {}},
      {"from_student_bn", [](Config& c) { c.t_bn_mode = "from_student"; c.t_eval = true; c.enc = "convnet_16_2"; }, {}, {}},
      {"supervised_labels", [](Config& c) { c.s_mode = "supervised"; c.out_dim = 10; }, {"train/CE"}, {}},
      {"supervised_logit_noise", [](Config& c) { c.s_mode = "supervised"; c.logit_noise_temp = 1.0; c.out_dim = 10; c.loss = "KL"; },
       {"train/KL"}, {}},
      {"accumulation_gradvar_feathist", [](Config& c) { c.batchaccum = 2; c.track_gradvar = true; c.track_feathist = true; },
       {"params/var(grad)", "params/enc/var(grad)", "params/head/var(grad)"}, {}},
  };
  for (const Case& k : cases) {
    CAPTURE(k.name);
    Config c = small_config();
    k.set(c);
    const fs::path dir = fs::path(tmp.path(k.name));
    const auto names = fit(c, dir);
    for (const auto& n : k.expect) {
      CAPTURE(n);
      CHECK(names.count(n));
    }
    for (const auto& n : k.absent) {
      CAPTURE(n);
      CHECK_FALSE(names.count(n));
    }
    const auto rows = io::MetricsLogger::read_histograms_jsonl((dir / "histograms.jsonl").string());
    REQUIRE_FALSE(rows.empty());
    CHECK(rows.front().histograms.count("hparams/t_cent"));
    CHECK(rows.front().histograms.count("train/feat/embed/s_x.pdist().hist()") == (c.track_feathist ? 1u : 0u));
  }
}

TEST_CASE("modes: validation with probes, best checkpoints, feature tables and parameter statistics") {
  testing::TempDir tmp("dino-save");
  Config c = small_config();
  c.n_epochs = 2;
  c.validation_freq = {false, 2};
  c.probing_epochs = 1;
  c.probing_k = 5;
  c.bs_eval = 500;  // the validation's feature figures grow with (bs_eval x crops)^2
  c.save_ckpt = {"probe_student", "loss_max", "rank_min"};
  c.save_features = {"all"};
  c.save_paramstats = {"all"};
  const fs::path dir = tmp.path("run");
  const auto names = fit(c, dir);
  for (const char* n : {"valid/loss", "valid/s_acc", "valid/feat/logit/t_x.rank()", "probe/student", "probe/teacher",
                        "probe/student/knn", "probe/teacher/knn", "probe/norm/student", "probe/norm/teacher/knn"}) {
    CAPTURE(n);
    CHECK(names.count(n));
  }
  std::set<std::string> prefixes;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("epoch=", 0) == 0) prefixes.insert(n.substr(n.find_last_of('-') + 1, n.find('=', n.find_last_of('-')) - n.find_last_of('-') - 1));
  }
  CHECK(prefixes == std::set<std::string>{"probe_student", "loss_max", "rank_min"});  // one file per policy
  // Feature tables of steps 0..12 (64 fixed test images; columns lbl, t_0.., s_0..).
  for (const auto& [kind, dim] : std::vector<std::pair<std::string, Index>>{{"embed", 64}, {"proje", 32}, {"logit", 32}}) {
    CAPTURE(kind);
    CHECK(fs::exists(dir / "valid/feat" / kind / "columns.json"));
    for (int step : {0, 12}) {
      char name[32];
      std::snprintf(name, sizeof name, "table_%06d.npy", step);
      const io::NpyTable a = io::read_npy_f32((dir / "valid/feat" / kind / name).string());
      CHECK(a.rows == 64);
      CHECK(a.cols == 1 + 2 * dim);
    }
  }
  for (const char* f : {"student_param_stats.csv", "student_grad_stats.csv", "teacher_param_stats.csv"}) {
    CAPTURE(f);
    CHECK(fs::exists(dir / f));
  }
  CHECK_FALSE(fs::exists(dir / "teacher_grad_stats.csv"));
}

}  // namespace
}  // namespace dino

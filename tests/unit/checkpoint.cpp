// Checkpoints: a run resumed from one continues bit for bit like the uninterrupted run, and bad files are
// rejected with the file named.
#include <doctest/doctest.h>

#include <unistd.h>

#include <dino/cpu.hpp>
#include <filesystem>

#include "../support/errors.hpp"
#include "dino/io/checkpoint.hpp"
#include "dino/teacher/init.hpp"
#include "dino/train/step.hpp"

namespace dino {
namespace {

using testing::error_of;

struct Run {
  Config cfg;
  DinoModel<double, Cpu> student, teacher;
  DinoTrainer<double, Cpu> trainer;
  explicit Run(const Config& c)
      : cfg(c), student(model_options(c, 28)), teacher(model_options(c, 28)), trainer(c, student, teacher, 1, 2) {}
};

Config small_config(const std::string& opt) {
  Config c;
  c.enc = "convnet_16_1";
  c.mc = "2x28";
  c.hid_dims = {8};
  c.l2bot_dim = 4;
  c.out_dim = 6;
  c.opt = opt;
  c.opt_lr = "0.05";
  c.n_epochs = 3;
  c.wn_freeze_epochs = 1;  // lin2 steps only from step 2 on: some tensors have no optimizer state at step 1
  return c;
}

std::vector<Tensor<double, Cpu>> crops_for(std::int64_t k) {
  Generator g(99, 0, 0, static_cast<std::uint64_t>(k));
  std::vector<Tensor<double, Cpu>> out;
  for (int i = 0; i < 2; ++i) out.push_back(Tensor<double, Cpu>::from_host({3, 3, 28, 28}, g.normal_vector<double>(3 * 3 * 28 * 28, 0, 1)));
  return out;
}

void step(Run& r, std::int64_t k) {
  Ctx<Cpu> ctx;
  auto crops = crops_for(k);
  r.trainer.step(ctx, {&crops[0], &crops[1]});
}

TEST_CASE_TEMPLATE("checkpoint: resuming continues bit for bit", Opt, std::integral_constant<int, 0>,
                   std::integral_constant<int, 1>, std::integral_constant<int, 2>) {
  const char* opts[] = {"adamw", "adam", "sgd"};
  const Config c = small_config(opts[Opt::value]);
  InitOptions io_opts;
  io_opts.s_init = "random";
  Run full(c);
  init_student_teacher(full.student, full.teacher, io_opts);
  Run first(c);
  init_student_teacher(first.student, first.teacher, io_opts);
  for (std::int64_t k = 0; k < 2; ++k) {
    step(full, k);
    step(first, k);
  }
  const auto path = std::filesystem::temp_directory_path() / ("dino-ckpt-" + std::to_string(::getpid()) + ".safetensors");
  io::CheckpointMeta meta;
  meta.trainer = {{"micro_step", first.trainer.micro_step()}};
  io::save_checkpoint(path.string(), first.student.state(), first.teacher.state(), first.trainer.optimizer(), meta);

  Run resumed(c);  // fresh models: everything must come from the file
  const auto f = io::Safetensors::load(path.string());
  const io::CheckpointMeta back = io::load_checkpoint(f, resumed.student.state(), resumed.teacher.state(), resumed.trainer.optimizer());
  resumed.trainer.restore_position(back.trainer.at("micro_step").get<std::int64_t>());
  CHECK(f.metadata.at("format") == "pt");
  for (std::int64_t k = 2; k < 5; ++k) {
    step(full, k);
    step(resumed, k);
  }
  CHECK(resumed.student.state().params.values().to_host() == full.student.state().params.values().to_host());
  CHECK(resumed.teacher.state().params.values().to_host() == full.teacher.state().params.values().to_host());
  CHECK(resumed.teacher.state().buffers.values().to_host() == full.teacher.state().buffers.values().to_host());
  CHECK(resumed.student.state().counters == full.student.state().counters);
  for (const auto& s : full.trainer.optimizer().state_names())
    CHECK(resumed.trainer.optimizer().state(s).to_host() == full.trainer.optimizer().state(s).to_host());
  CHECK(resumed.trainer.optimizer().step_counts() == full.trainer.optimizer().step_counts());
  std::filesystem::remove(path);
}

TEST_CASE("checkpoint: mismatched files are rejected") {
  Run a(small_config("adamw"));
  step(a, 0);
  io::Safetensors f = io::checkpoint_tensors(a.student.state(), a.teacher.state(), a.trainer.optimizer(), {});
  Run sgd(small_config("sgd"));
  CHECK(testing::contains(error_of([&] { io::load_checkpoint(f, sgd.student.state(), sgd.teacher.state(), sgd.trainer.optimizer()); }), "adamw optimizer"));
  Run b(small_config("adamw"));
  f.erase("optimizer.exp_avg.enc.conv1.weight");
  CHECK(testing::contains(error_of([&] { io::load_checkpoint(f, b.student.state(), b.teacher.state(), b.trainer.optimizer()); }), "optimizer.exp_avg.enc.conv1.weight"));
  f.metadata.erase("trainer");
  f.set("optimizer.exp_avg.enc.conv1.weight", {16, 3, 3, 3}, std::vector<double>(16 * 27, 0.0));
  CHECK(testing::contains(error_of([&] { io::load_checkpoint(f, b.student.state(), b.teacher.state(), b.trainer.optimizer()); }), "\"trainer\""));
}

}  // namespace
}  // namespace dino

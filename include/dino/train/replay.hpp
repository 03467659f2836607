// Replays recorded training steps (the engine of examples/dino_replay): given a configuration, the initial
// student and teacher state and the crops of K micro-batches, runs K training steps and returns the final
// state plus the per-step losses, so that a step here can be compared with another implementation's.
//   init:    student.<state_dict key>, teacher.<state_dict key> (buffers and num_batches_tracked included)
//   batches: step<k>/crop<i> [B, 3, S_i, S_i] for every crop i of --mc; optional step<k>/target (int64 [B]
//            labels or float [B, n] logits)
//   result:  the final state in the same naming, and loss, CE, KL, H_pred, MSE [K] (float64; every value
//            is computed whatever the configured loss)
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"
#include "dino/io/state_io.hpp"
#include "dino/train/step.hpp"

namespace dino {

// The number of micro-batches K in a batches file (step0 ... step<K-1>, without gaps).
inline std::int64_t replay_step_count(const io::Safetensors& batches) {
  std::int64_t k = 0;
  while (batches.has("step" + std::to_string(k) + "/crop0")) ++k;
  DINO_CHECK(k > 0, "'", batches.origin(), "' holds no 'step0/crop0' tensor");
  for (const std::string& name : batches.names()) {
    const auto slash = name.find('/');
    DINO_CHECK(name.compare(0, 4, "step") == 0 && slash != std::string::npos, "'", batches.origin(),
               "': unexpected tensor '", name, "' (expected step<k>/crop<i> or step<k>/target)");
    std::int64_t idx = -1;
    try {
      idx = std::stoll(name.substr(4, slash - 4));
    } catch (const std::exception&) {
    }
    DINO_CHECK(idx >= 0 && idx < k, "'", batches.origin(), "': tensor '", name, "' does not belong to steps 0..", k - 1,
               " (is step", k, "/crop0 missing?)");
  }
  return k;
}

template <class T, class B>
io::Safetensors replay(Ctx<B>& ctx, const Config& cfg, std::int64_t steps_per_epoch, const io::Safetensors& init,
                       const io::Safetensors& batches) {
  cfg.validate();
  DINO_CHECK(cfg.batchaccum >= 1, "replay: batchaccum must be a number >= 1 (-1 needs a data loader)");
  const MultiCrop mc = multicrop_preset(cfg.mc);
  const std::int64_t k_steps = replay_step_count(batches);

  const auto crop_key = [](std::int64_t k, std::size_t i) { return "step" + std::to_string(k) + "/crop" + std::to_string(i); };
  const auto& first = batches.at(crop_key(0, 0));
  DINO_CHECK(first.shape.size() == 4, "'", batches.origin(), "': step0/crop0 must be [B, 3, S, S]");
  DINO_CHECK(first.shape[2] == mc.crops[0].size, "'", batches.origin(), "': step0/crop0 has size ", first.shape[2],
             " but --mc ", cfg.mc, " makes crop 0 ", mc.crops[0].size, " pixels");

  DinoModel<T, B> student(model_options(cfg, mc.crops[0].size));
  DinoModel<T, B> teacher(model_options(cfg, mc.crops[0].size));
  io::load_state(init, student.state(), "student");
  io::load_state(init, teacher.state(), "teacher");
  DinoTrainer<T, B> trainer(cfg, student, teacher, cfg.batchaccum, steps_per_epoch);
  const std::int64_t micro_total = trainer.schedule_length() * cfg.batchaccum;
  DINO_CHECK(k_steps <= micro_total, "replay: ", k_steps, " micro-batches but the schedules hold ",
             trainer.schedule_length(), " optimizer steps (n_epochs ", cfg.n_epochs, ", n_steps ", cfg.n_steps,
             ", steps_per_epoch ", steps_per_epoch, ")");

  std::vector<double> loss, ce, kl, h_pred, mse;
  std::vector<Tensor<T, B>> crops(mc.crops.size());
  Tensor<T, B> target_logits;
  for (std::int64_t k = 0; k < k_steps; ++k) {
    std::vector<const Tensor<T, B>*> ptrs;
    for (std::size_t i = 0; i < mc.crops.size(); ++i) {
      const std::string key = crop_key(k, i);
      const auto& t = batches.at(key);
      const Index s = mc.crops[i].size;
      DINO_CHECK(t.shape.size() == 4 && t.shape[1] == 3 && t.shape[2] == s && t.shape[3] == s &&
                     t.shape[0] == first.shape[0],
                 "'", batches.origin(), "': '", key, "' has shape ", Shape(t.shape).str(), "; expected [",
                 first.shape[0], ", 3, ", s, ", ", s, "]");
      crops[i] = Tensor<T, B>::from_host(Shape(t.shape), batches.values<T>(key));
      ptrs.push_back(&crops[i]);
    }
    StepTargets<T, B> targets;
    const std::string tkey = "step" + std::to_string(k) + "/target";
    if (batches.has(tkey)) {
      const auto& t = batches.at(tkey);
      if (t.dtype == io::DType::I64 || t.dtype == io::DType::I32) {
        targets.labels = batches.values<std::int64_t>(tkey);
      } else {
        target_logits = Tensor<T, B>::from_host(Shape(t.shape), batches.values<T>(tkey));
        targets.logits = &target_logits;
      }
    }
    const StepResult r = trainer.step(ctx, ptrs, targets);
    loss.push_back(r.loss.loss);
    ce.push_back(r.loss.CE);
    kl.push_back(r.loss.KL);
    h_pred.push_back(r.loss.H_pred);
    mse.push_back(r.loss.MSE);
    if (r.optimizer_step && trainer.global_step() % steps_per_epoch == 0) trainer.end_epoch(trainer.global_step() / steps_per_epoch - 1);
  }

  io::Safetensors out;
  out.metadata["format"] = "pt";
  io::save_state(out, student.state(), "student");
  io::save_state(out, teacher.state(), "teacher");
  const std::vector<Index> shape{k_steps};
  out.set("loss", shape, loss);
  out.set("CE", shape, ce);
  out.set("KL", shape, kl);
  out.set("H_pred", shape, h_pred);
  out.set("MSE", shape, mse);
  return out;
}

}  // namespace dino

// Training checkpoints (spec A10): one safetensors file holding the whole DINO state under the testbed's
// state_dict names ("student.enc...", "teacher.head.cent", BatchNorm statistics and num_batches_tracked),
// the optimizer state ("optimizer.<exp_avg|exp_avg_sq|momentum_buffer>.<parameter name>", and the step
// counts in the metadata), and the trainer state as JSON in "__metadata__". Written atomically. In PyTorch,
// the student's weights are `{k[8:]: v for k, v in f.items() if k.startswith("student.")}`.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"
#include "dino/io/state_io.hpp"
#include "dino/optim/optimizer.hpp"

namespace dino::io {

// What a checkpoint's metadata holds besides "format": free JSON of the trainer (loop counters, RNG seeds,
// the resolved configuration, best-metric trackers).
struct CheckpointMeta {
  nlohmann::json trainer = nlohmann::json::object();
  nlohmann::json config = nlohmann::json::object();
};

template <class T, class B>
Safetensors checkpoint_tensors(const ModelState<T, B>& student, const ModelState<T, B>& teacher,
                               const Optimizer<T, B>& opt, const CheckpointMeta& meta) {
  Safetensors f;
  save_state(f, student, "student");
  save_state(f, teacher, "teacher");
  const NamedStore<T, B>& params = student.params;
  nlohmann::json steps = nlohmann::json::object();
  for (const std::string& s : opt.state_names()) {
    const std::vector<T> all = opt.state(s).to_host();
    for (Index id = 0; id < params.count(); ++id) {
      const Entry& e = params.entry(id);
      if (opt.step_count(id) == 0) continue;  // torch keeps no state for a tensor that never stepped
      f.set("optimizer." + s + "." + e.name, e.shape.vec(),
            std::vector<T>(all.begin() + e.offset, all.begin() + e.offset + e.shape.numel()));
    }
  }
  for (Index id = 0; id < params.count(); ++id) steps[params.entry(id).name] = opt.step_count(id);
  f.metadata["format"] = "pt";
  f.metadata["optimizer"] = nlohmann::json{{"kind", optimizer_name(opt.options().kind)}, {"steps", steps}}.dump();
  f.metadata["trainer"] = meta.trainer.dump();
  f.metadata["config"] = meta.config.dump();
  return f;
}

// Writes the checkpoint atomically (an interrupted save leaves the previous file intact).
template <class T, class B>
void save_checkpoint(const std::string& path, const ModelState<T, B>& student, const ModelState<T, B>& teacher,
                     const Optimizer<T, B>& opt, const CheckpointMeta& meta) {
  checkpoint_tensors(student, teacher, opt, meta).save(path);
}

namespace detail {
inline nlohmann::json metadata_json(const Safetensors& f, const std::string& key) {
  auto it = f.metadata.find(key);
  DINO_CHECK(it != f.metadata.end(), "checkpoint '", f.origin(), "' has no \"", key, "\" metadata");
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    fail("checkpoint '", f.origin(), "': the \"", key, "\" metadata is not valid JSON");
  }
}
}  // namespace detail

// Restores everything save_checkpoint wrote into models and optimizer of the same configuration; returns
// the metadata. A missing or mis-shaped tensor, or an optimizer of another kind, is an error naming the file.
template <class T, class B>
CheckpointMeta load_checkpoint(const Safetensors& f, ModelState<T, B>& student, ModelState<T, B>& teacher,
                               Optimizer<T, B>& opt) {
  load_state(f, student, "student");
  load_state(f, teacher, "teacher");
  const nlohmann::json o = detail::metadata_json(f, "optimizer");
  DINO_CHECK(o.is_object() && o.value("kind", "") == optimizer_name(opt.options().kind), "checkpoint '", f.origin(),
             "' holds the state of the ", o.is_object() ? o.value("kind", "?") : "?", " optimizer, the run uses ",
             optimizer_name(opt.options().kind));
  const NamedStore<T, B>& params = student.params;
  const nlohmann::json& steps = o.at("steps");
  for (const std::string& s : opt.state_names()) {
    std::vector<T> all(static_cast<std::size_t>(params.numel()), T(0));
    for (Index id = 0; id < params.count(); ++id) {
      const Entry& e = params.entry(id);
      const std::string key = "optimizer." + s + "." + e.name;
      if (!f.has(key)) continue;
      DINO_CHECK(f.at(key).shape == e.shape.vec(), "checkpoint '", f.origin(), "': '", key, "' has the wrong shape");
      const std::vector<T> v = f.values<T>(key);
      std::copy(v.begin(), v.end(), all.begin() + e.offset);
    }
    B::copy_from_host(opt.state(s).data(), all.data(), params.numel());
  }
  for (Index id = 0; id < params.count(); ++id) {
    const std::string& name = params.entry(id).name;
    DINO_CHECK(steps.contains(name) && steps[name].is_number_integer(), "checkpoint '", f.origin(),
               "' has no optimizer step count for '", name, "'");
    const std::int64_t n = steps[name].get<std::int64_t>();
    for (const std::string& s : opt.state_names())
      DINO_CHECK(n == 0 || f.has("optimizer." + s + "." + name), "checkpoint '", f.origin(), "' lacks 'optimizer.",
                 s, ".", name, "'");
    opt.set_step_count(id, n);
  }
  CheckpointMeta meta;
  meta.trainer = detail::metadata_json(f, "trainer");
  meta.config = detail::metadata_json(f, "config");
  return meta;
}

}  // namespace dino::io

// A training run (the testbed's dino.py main with its Lightning loop, spec §9): datasets and loaders, the
// teacher/student initialisation, validation and probing before, during (--validation_freq) and after
// training, the per-step metrics (§11: train/*, hparams/*), the end-of-epoch teacher copy, checkpoints and
// the metric files of the results folder. The `dino` command drives it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dino/data/datasets.hpp"
#include "dino/data/loader.hpp"
#include "dino/io/checkpoint.hpp"
#include "dino/io/file.hpp"
#include "dino/io/metrics.hpp"
#include "dino/io/svg_plot.hpp"
#include "dino/probe/prober.hpp"
#include "dino/teacher/init.hpp"
#include "dino/train/run_trackers.hpp"
#include "dino/train/step.hpp"

namespace dino {

// What a run prints while it trains (the progress bar lives in the command, not here).
struct RunCallbacks {
  std::function<void(std::int64_t epoch, std::int64_t step_in_epoch, std::int64_t steps, const StepResult&)> on_step;
  std::function<void(const std::string& when, const std::map<std::string, double>& metrics)> on_validation;
  // Polled between optimizer steps and after each epoch's end: true stops the run there, with its position
  // saved in last.safetensors (the command sets it on SIGINT/SIGTERM).
  std::function<bool()> should_stop;
};

// Where a run stands between two optimizer steps: the next micro-batch is batch `batch` of epoch `epoch`
// (batch == the epoch's batch count: its batches are done, its end (validation, teacher copy, last
// checkpoint) is not), plus what the loop keeps besides the models and the optimizer.
struct RunPosition {
  std::int64_t epoch = 0, batch = 0, global_step = 0, micro_step = 0, validations = 0;
  // The rows of metrics.jsonl and histograms.jsonl written so far (-1: unknown, the rows up to global_step).
  std::int64_t metric_rows = -1, histogram_rows = -1;
  bool completed = false;  // fit() returned normally: the validation after training is done
};

template <class T, class B>
class TrainingRun {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;

  // c must have its seed resolved; logdir is created, with config.json (c, re-loadable by --from_json). With
  // `resume_from` (a checkpoint this class wrote for the same configuration), the models, the optimizer, the
  // loop position and the metric files continue from it: the run then ends exactly as an uninterrupted one
  // (same thread count and backend).
  TrainingRun(const Config& c, std::string logdir, RunCallbacks callbacks = {}, const std::string& resume_from = "")
      : c_(c), logdir_(std::move(logdir)), cb_(std::move(callbacks)), mc_(multicrop_preset(c.mc)) {
    DINO_CHECK(c.seed.has_value(), "a run needs a resolved seed");
    c_.validate();
    check_model_config<T, B>(c_, mc_.sizes());
    seed_ = static_cast<std::uint64_t>(*c.seed);
    const std::string data_dir = resolve_data_dir(c.data_dir);
    train_set_ = load_dataset(c.dataset, Split::train, data_dir);
    test_set_ = load_dataset(c.dataset, Split::test, data_dir);
    student_ = std::make_unique<DinoModel<T, B>>(model_options(c, mc_.crops[0].size));
    teacher_ = std::make_unique<DinoModel<T, B>>(model_options(c, mc_.crops[0].size));
    std::unique_ptr<io::Safetensors> ckpt;
    if (!c.ckpt_path.empty()) ckpt = std::make_unique<io::Safetensors>(io::Safetensors::load(c.ckpt_path));
    init_student_teacher(*student_, *teacher_, init_options(c, seed_, ckpt.get()));

    train_loader_ = std::make_unique<Loader<T>>(train_set_, train_loader_spec(c, train_set_, seed_));
    const std::int64_t batches = train_loader_->steps_per_epoch();
    batchaccum_ = c.batchaccum == -1 ? batches : c.batchaccum;
    DINO_CHECK(batches % batchaccum_ == 0, "--batchaccum ", batchaccum_, " does not divide the ", batches,
               " training batches of an epoch (steps per epoch must be a whole number)");
    trainer_ = std::make_unique<DinoTrainer<T, B>>(c, *student_, *teacher_, batchaccum_, batches / batchaccum_);
    if (!resume_from.empty()) resume(resume_from);
    // The folder appears only once the data, the models and the checkpoint have loaded: a bad input leaves
    // nothing behind.
    std::filesystem::create_directories(logdir_);
    io::write_file_atomic(logdir_ + "/config.json", resolved_config().dump(2) + "\n");
    metrics_ = std::make_unique<io::MetricsLogger>(logdir_, !resume_from.empty(), pos_.global_step, pos_.metric_rows,
                                                   pos_.histogram_rows);
    trackers_ = std::make_unique<RunTrackers<T, B>>(c_, *student_, *teacher_, *trainer_, test_set_, logdir_,
                                                    !resume_from.empty(), pos_.global_step);
    trainer_->set_after_backward([this] { trackers_->after_backward(ctx_, trainer_->micro_step()); });
  }

  DinoModel<T, B>& student() { return *student_; }
  DinoModel<T, B>& teacher() { return *teacher_; }
  DinoTrainer<T, B>& trainer() { return *trainer_; }
  const ImageSet& train_set() const { return train_set_; }
  const ImageSet& test_set() const { return test_set_; }
  std::int64_t batchaccum() const { return batchaccum_; }

  // Trains for --n_epochs / --n_steps (whichever ends first), validating before, during and after. Returns
  // false when should_stop() ended it early (last.safetensors then holds its position), true when it finished.
  bool fit() {
    if (pos_.micro_step == 0 && pos_.batch == 0 && pos_.epoch == 0) {
      if (trainer_->schedule_length() > 0) trainer_->apply_schedules(0);  // none without any training step
      trackers_->at_fit_start(ctx_);
      validate_and_probe("start");
    } else if (pos_.global_step > 0) {
      trainer_->apply_schedules(pos_.global_step - 1);  // the heads as the last step left them
    }
    const std::int64_t spe = trainer_->steps_per_epoch();
    const std::int64_t micro_per_epoch = spe * batchaccum_;
    // A float --validation_freq f validates every floor(f * total) training batches (spec §1.2).
    std::int64_t every = 0;
    if (c_.validation_freq.is_float) {
      const std::int64_t total = trainer_->schedule_length() * batchaccum_;
      every = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(c_.validation_freq.value * static_cast<double>(total))));
    }
    bool stop = false;
    RunPosition done = pos_;
    const auto steps_done = [&] { return c_.n_steps >= 0 && trainer_->global_step() >= c_.n_steps; };
    for (std::int64_t e = pos_.epoch; !stop && !steps_done() && (c_.n_epochs < 0 || e < c_.n_epochs); ++e) {
      std::int64_t b = e == pos_.epoch ? pos_.batch : 0;
      train_loader_->start(e, b);
      while (const Batch<T>* batch = train_loader_->next()) {
        const StepResult r = train_batch(*batch, e, b++, micro_per_epoch);
        if (every > 0 && trainer_->micro_step() % every == 0) validate_and_probe("step", at(e, b));
        if (trainer_->micro_step() % batchaccum_ != 0) continue;  // positions lie between optimizer steps
        consider_best("loss_max", r.loss.loss, true, best_name(e, "loss_max", r.loss.loss), at(e, b));
        consider_best("rank_min", last_rank_, false, best_name(e, "rank_min", last_rank_), at(e, b));
        last_rank_ = NAN;
        if (steps_done()) {
          stop = true;
          break;
        }
        if (cb_.should_stop && cb_.should_stop()) return interrupt(e, b);
      }
      const bool due = !c_.validation_freq.is_float && c_.validation_freq.value > 0 &&
                       (e + 1) % static_cast<std::int64_t>(c_.validation_freq.value) == 0;
      if (due && !stop) validate_and_probe("epoch", at(e, micro_per_epoch));
      trainer_->end_epoch(e);
      trackers_->write_tables();
      done = at(e + 1, 0);
      if (saves_checkpoints()) save_checkpoint("last.safetensors", done);
      if (c_.stop_on_non_finite && !all_finite()) stop = true;
      if (!stop && cb_.should_stop && cb_.should_stop()) return interrupt(e + 1, 0);
    }
    // The validation after fit (skipped when nothing was trained: it would repeat the first one).
    if (trainer_->micro_step() > 0) validate_and_probe("end");
    done = at(done.epoch, done.batch);  // with the validations counted
    done.completed = true;
    trackers_->write_tables();
    if (saves_checkpoints()) save_checkpoint("last.safetensors", done);
    metrics_->close();
    // plot.svg: the loss, the entropies and the probe accuracies over training.
    io::write_svg_plot(logdir_ + "/plot.svg", io::MetricsLogger::read_jsonl(logdir_ + "/metrics.jsonl"),
                       {{"loss", {"train/loss", "valid/loss"}},
                        {"entropies", {"train/H_preds", "train/H_targs"}},
                        {"probe accuracy", {"probe/student", "probe/teacher", "probe/student/knn", "probe/teacher/knn"}}});
    return true;
  }

 private:
  // config.json: the configuration with what the run derived from it (spec §1.3: defaults resolved from the
  // data and the encoder, the crops, the folder). It reloads with --from_json to the same run.
  nlohmann::json resolved_config() const {
    nlohmann::json j = to_json(c_);
    const HeadOptions& head = student_->options().head;
    j["hid_dims"] = head.hid_dims;
    j["l2bot_dim"] = head.l2bot_dim;
    j["out_dim"] = head.out_dim;
    j["batchaccum"] = batchaccum_;
    if (!c_.n_classes && !c_.inputs_as_logits) j["n_classes"] = train_set_.info.classes;
    j["img_size"] = train_set_.h;
    j["ds_classes"] = train_set_.info.classes;
    j["embed_dim"] = student_->embed_dim();
    nlohmann::json crops = nlohmann::json::array();
    for (const CropSpec& crop : mc_.crops)
      crops.push_back({{"name", crop.name}, {"out_size", crop.size}, {"min_scale", crop.min_scale},
                       {"max_scale", crop.max_scale}, {"teacher", crop.teacher}, {"student", crop.student}});
    j["mc_spec"] = crops;
    j["logdir"] = std::filesystem::absolute(logdir_).lexically_normal().string();
    return j;
  }

  // Copies a batch's crops (and, when supervised, its targets) to the backend; the tensors are reused.
  std::vector<const TensorT*> upload(const Batch<T>& batch, StepTargets<T, B>& targets) {
    crops_.resize(batch.crops.size());
    std::vector<const TensorT*> ptrs;
    for (std::size_t i = 0; i < batch.crops.size(); ++i) {
      crops_[i].resize(batch.crop_shape(i));
      B::copy_from_host(crops_[i].data(), batch.crops[i].data.data(), crops_[i].numel());
      ptrs.push_back(&crops_[i]);
    }
    targets = {};
    if (c_.s_mode != "supervised") return ptrs;
    if (batch.has_logits()) {
      target_logits_.resize({batch.size, batch.logit_dim});
      B::copy_from_host(target_logits_.data(), batch.logits.data(), target_logits_.numel());
      targets.logits = &target_logits_;
    } else {
      targets.labels = batch.labels;
    }
    return ptrs;
  }

  StepResult train_batch(const Batch<T>& batch, std::int64_t epoch, std::int64_t b, std::int64_t micro_per_epoch) {
    StepTargets<T, B> targets;
    const std::vector<const TensorT*> ptrs = upload(batch, targets);
    const std::int64_t micro = trainer_->micro_step();
    const StepResult r = trainer_->step(ctx_, ptrs, targets);
    if (cb_.on_step) cb_.on_step(epoch, b, micro_per_epoch, r);
    const bool logged = trackers_->logged(micro);
    MetricRow m;
    HistogramRow h;
    if (logged) m = step_metrics(r, h);
    trackers_->after_step(ctx_, micro, ptrs, targets, m, h);
    if (logged) {
      metrics_->log(trainer_->global_step(), epoch, m, h);
      if (auto it = m.find("train/feat/embed/s_x.rank()"); it != m.end()) last_rank_ = it->second;
    }
    return r;
  }

  // train/* and hparams/* of one step (spec §11: MetricsTracker, PerCropEntropyTracker, HParamTracker).
  MetricRow step_metrics(const StepResult& r, HistogramRow& h) {
    std::map<std::string, double> m = loss_metrics("train", r.loss);
    m["hparams/lr"] = r.lr_used;
    m["hparams/wd"] = r.sched.wd;
    m["hparams/t_mom"] = r.sched.t_mom;
    m["hparams/t_cmom"] = r.sched.t_cmom;
    m["hparams/s_cmom"] = r.sched.s_cmom;
    m["hparams/t_temp"] = r.sched.t_temp;
    m["hparams/s_temp"] = r.sched.s_temp;
    // Only the centre crosses to the host, not the whole buffer store (BatchNorm statistics included).
    auto& buf = teacher_->state().buffers;
    const Index id = teacher_->head().cent_id();
    const Index k = buf.entry(id).shape.numel();
    cent_host_.resize(static_cast<std::size_t>(k));
    B::copy_to_host(cent_host_.data(), buf.value(id), k);
    double sum = 0, sq = 0;
    for (const T v : cent_host_) sum += v, sq += static_cast<double>(v) * v;
    m["hparams/t_cent.norm()"] = std::sqrt(sq);
    m["hparams/t_cent.mean()"] = sum / static_cast<double>(k);
    h["hparams/t_cent"] = io::make_histogram(std::vector<double>(cent_host_.begin(), cent_host_.end()));
    return m;
  }

  std::map<std::string, double> loss_metrics(const std::string& prefix, const LossValues& v) const {
    std::map<std::string, double> m;
    m[prefix + "/loss"] = v.loss;
    if (c_.loss == "MSE") {
      m[prefix + "/MSE"] = v.MSE;
      return m;
    }
    // Part A4: every classification loss logs CE, KL and the entropies.
    m[prefix + "/CE"] = v.CE;
    m[prefix + "/KL"] = v.KL;
    m[prefix + "/H_preds"] = v.H_pred;
    m[prefix + "/H_targs"] = v.H_targ;
    const auto s_idx = mc_.student_idx(), t_idx = mc_.teacher_idx();
    for (std::size_t i = 0; i < v.H_preds.size() && i < s_idx.size(); ++i)
      m[prefix + "/H_preds/" + mc_.crops[static_cast<std::size_t>(s_idx[i])].name] = v.H_preds[i];
    if (v.H_targs.size() == t_idx.size())
      for (std::size_t i = 0; i < t_idx.size(); ++i)
        m[prefix + "/H_targs/" + mc_.crops[static_cast<std::size_t>(t_idx[i])].name] = v.H_targs[i];
    return m;
  }

  // valid/* (epoch means over the test split, spec §9.5) and probe/* (§10, every --probe_every validations).
  // `where` is the position of a validation during training ("step", "epoch"), where a probe_student
  // checkpoint would resume.
  void validate_and_probe(const std::string& when, const RunPosition& where = {}) {
    if (!c_.validation_freq.is_float && c_.validation_freq.value == 0) return;
    std::map<std::string, double> sums;
    std::int64_t n = 0;
    trackers_->validation_begin();
    Loader<T> valid(test_set_, valid_loader_spec(c_, test_set_, seed_));
    valid.start(0);
    while (const Batch<T>* batch = valid.next()) {
      StepTargets<T, B> targets;
      const std::vector<const TensorT*> ptrs = upload(*batch, targets);
      const LossValues v = trainer_->evaluate(ctx_, ptrs, targets);
      trackers_->validation_batch(ctx_, targets);
      for (const auto& [k, x] : loss_metrics("valid", v)) sums[k] += x * static_cast<double>(batch->size);
      n += batch->size;
    }
    std::map<std::string, double> m;
    for (const auto& [k, x] : sums) m[k] = x / static_cast<double>(n);
    HistogramRow h;
    trackers_->validation_end(m, h);
    ++validations_;
    if (c_.probe_every > 0 && ((validations_ - 1) % c_.probe_every == 0 || when == "end"))
      for (const auto& [k, x] : probes()) m[k] = x;
    const bool in_fit = when == "step" || when == "epoch";
    metrics_->log(trainer_->global_step(), in_fit ? where.epoch : trainer_->epoch(), m, h);
    if (cb_.on_validation) cb_.on_validation(when, m);
    // PL saves checkpoints only while fitting: not for the validations before and after training.
    // A resumed run repeats an epoch's end, its validation included, but goes on after a validation between
    // two batches (float --validation_freq): that one is part of the position of the checkpoint it writes.
    const RunPosition p = when == "step" ? at(where.epoch, where.batch) : where;
    if (auto it = m.find("probe/student"); it != m.end() && in_fit)
      consider_best("probe_student", it->second, true, best_name(where.epoch, "probe_student", it->second), p);
  }

  // "epoch=3-probe_student=0.812.safetensors" (the testbed's filename pattern); the step-wise policies add the
  // step: "epoch=0-step=17-loss_max=8.302.safetensors".
  std::string best_name(std::int64_t epoch, const std::string& policy, double value) const {
    char v[64];
    std::snprintf(v, sizeof v, policy == "rank_min" ? "%.0f" : "%.3f", value);
    std::string name = "epoch=" + std::to_string(epoch);
    if (policy != "probe_student") name += "-step=" + std::to_string(trainer_->global_step());
    return name + "-" + policy + "=" + v + ".safetensors";
  }

  // Embeddings [N, E] of a whole split through an encoder in eval mode, with the eval transform (Resize(S0)).
  void embed(Encoder<T, B>& enc, const ImageSet& set, TensorT& out, std::vector<std::int64_t>& labels) {
    Loader<T> loader(set, eval_loader_spec(c_, set));
    loader.start(0);
    const Index e = enc.embed_dim();
    std::vector<T> feats;
    labels.clear();
    feats.reserve(static_cast<std::size_t>(set.n * e));
    NoGrad<Ctx<B>> no_grad(ctx_);
    const bool was_training = enc.training();
    enc.train(false);
    TensorT x, y;
    Saved<T, B> saved;
    while (const Batch<T>* b = loader.next()) {
      x.resize(b->crop_shape(0));
      B::copy_from_host(x.data(), b->crops[0].data.data(), x.numel());
      enc.forward(ctx_, x, y, saved);
      const auto h = y.to_host();
      feats.insert(feats.end(), h.begin(), h.end());
      labels.insert(labels.end(), b->labels.begin(), b->labels.end());
    }
    enc.train(was_training);
    out = TensorT::from_host({static_cast<Index>(labels.size()), e}, feats);
  }

  std::map<std::string, double> probes() {
    probe::ProbeOptions o;
    o.n_classes = train_set_.info.classes;
    o.epochs = c_.probing_epochs;
    o.k = c_.probing_k;
    o.batch_size = c_.bs_eval;
    o.normalize = c_.normalize_probe;
    // Without --prober_seed each probe gets a fresh seed (spec §10); derived from the run seed and the count
    // of validations so far, so that a run stays reproducible from --seed (A7).
    o.seed = c_.prober_seed ? static_cast<std::uint64_t>(*c_.prober_seed)
                            : Generator(seed_, purpose::probe, static_cast<std::uint64_t>(validations_)).next_u64();
    if (o.epochs <= 0 && o.k <= 0) return {};
    probe::ProbeFeatures<T, B> f[2];
    DinoModel<T, B>* nets[2] = {student_.get(), teacher_.get()};
    for (int i = 0; i < 2; ++i) {
      embed(nets[i]->encoder(), train_set_, f[i].train, f[i].train_labels);
      embed(nets[i]->encoder(), test_set_, f[i].valid, f[i].valid_labels);
    }
    return probe::probe_metrics(ctx_, f[0], f[1], o);
  }

  bool all_finite() const {
    for (const DinoModel<T, B>* net : {student_.get(), teacher_.get()})
      for (T v : net->state().params.values().to_host())
        if (!std::isfinite(static_cast<double>(v))) return false;
    return true;
  }

  RunPosition at(std::int64_t epoch, std::int64_t batch) const {
    RunPosition p;
    p.epoch = epoch;
    p.batch = batch;
    p.global_step = trainer_->global_step();
    p.micro_step = trainer_->micro_step();
    p.validations = validations_;
    p.metric_rows = metrics_->rows();
    p.histogram_rows = metrics_->histogram_rows();
    return p;
  }

  // should_stop() ended the run between two optimizer steps: its position goes to last.safetensors (whatever
  // --save_ckpt says: it is what --resume continues from).
  bool interrupt(std::int64_t epoch, std::int64_t batch) {
    trackers_->write_tables();
    save_checkpoint("last.safetensors", at(epoch, batch));
    metrics_->close();
    return false;
  }

  bool saves_checkpoints() const { return !has(c_.save_ckpt, "none"); }
  static bool has(const std::vector<std::string>& list, const std::string& x) {
    return std::find(list.begin(), list.end(), x) != list.end();
  }

  // The best-checkpoint policies of spec §12.3 (PL ModelCheckpoint, top 1): a strictly better value replaces
  // the policy's file; the previous one is removed after the new one is in place.
  struct Best {
    double value = 0;
    std::string file;
  };
  void consider_best(const std::string& policy, double value, bool maximize, const std::string& file,
                     const RunPosition& p) {
    if (!has(c_.save_ckpt, policy) || std::isnan(value)) return;
    const auto it = best_.find(policy);
    if (it != best_.end() && !(maximize ? value > it->second.value : value < it->second.value)) return;
    const std::string previous = it == best_.end() ? std::string() : it->second.file;
    save_checkpoint(file, p, policy, value);
    if (!previous.empty() && previous != file) std::filesystem::remove(logdir_ + "/" + previous);
  }

  // Writes a checkpoint (atomically) holding the models, the optimizer, the position and the best values;
  // `policy`/`value` name a best checkpoint being written (its record is part of its own metadata).
  void save_checkpoint(const std::string& name, const RunPosition& p, const std::string& policy = "",
                       double value = 0) {
    if (!policy.empty()) best_[policy] = {value, name};
    nlohmann::json best = nlohmann::json::object();
    for (const auto& [k, b] : best_) best[k] = {{"value", b.value}, {"file", b.file}};
    io::CheckpointMeta meta;
    meta.trainer = {{"epoch", p.epoch},
                    {"batch", p.batch},
                    {"global_step", p.global_step},
                    {"micro_step", p.micro_step},
                    {"validations", p.validations},
                    {"metric_rows", p.metric_rows},
                    {"histogram_rows", p.histogram_rows},
                    {"completed", p.completed},
                    {"seed", seed_},
                    {"best", best}};
    meta.config = to_json(c_);
    io::save_checkpoint(logdir_ + "/" + name, student_->state(), teacher_->state(), trainer_->optimizer(), meta);
  }

  // Restores a checkpoint of this run's configuration: models, optimizer, position, best values. Best
  // checkpoints written after that position (by a run killed later) are removed so that the resumed run
  // keeps only its own.
  void resume(const std::string& path) {
    const io::Safetensors f = io::Safetensors::load(path);
    const io::CheckpointMeta meta = io::load_checkpoint(f, student_->state(), teacher_->state(), trainer_->optimizer());
    const nlohmann::json& t = meta.trainer;
    const auto get = [&](const char* key) {
      DINO_CHECK(t.contains(key) && t[key].is_number_integer(), "checkpoint '", path, "' has no position (trainer.",
                 key, "): it was not written by a training run");
      return t[key].get<std::int64_t>();
    };
    pos_.epoch = get("epoch");
    pos_.batch = get("batch");
    pos_.global_step = get("global_step");
    pos_.micro_step = get("micro_step");
    pos_.validations = get("validations");
    pos_.metric_rows = t.value("metric_rows", std::int64_t{-1});
    pos_.histogram_rows = t.value("histogram_rows", std::int64_t{-1});
    pos_.completed = t.value("completed", false);
    DINO_CHECK(!pos_.completed, "the run of '", path, "' is complete (step ", pos_.global_step, "): nothing to resume");
    DINO_CHECK(pos_.micro_step == pos_.global_step * batchaccum_ &&
                   pos_.micro_step == pos_.epoch * trainer_->steps_per_epoch() * batchaccum_ + pos_.batch &&
                   pos_.batch <= trainer_->steps_per_epoch() * batchaccum_,
               "checkpoint '", path, "': its position (epoch ", pos_.epoch, ", batch ", pos_.batch, ", step ",
               pos_.global_step, ") does not fit this configuration");
    trainer_->restore_position(pos_.micro_step);
    validations_ = pos_.validations;
    std::set<std::string> kept;
    if (t.contains("best"))
      for (auto it = t["best"].begin(); it != t["best"].end(); ++it) {
        const nlohmann::json& b = it.value();
        best_[it.key()] = {b.at("value").template get<double>(), b.at("file").template get<std::string>()};
        kept.insert(best_[it.key()].file);
      }
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(logdir_, ec)) {
      const std::string n = entry.path().filename().string();
      const bool best_file = n.rfind("epoch=", 0) == 0 && n.size() > 12 && n.substr(n.size() - 12) == ".safetensors";
      if (best_file && !kept.count(n) && entry.path() != std::filesystem::path(path)) std::filesystem::remove(entry.path());
    }
  }

  Config c_;
  std::string logdir_;
  RunCallbacks cb_;
  MultiCrop mc_;
  std::uint64_t seed_ = 0;
  ImageSet train_set_, test_set_;
  std::unique_ptr<DinoModel<T, B>> student_, teacher_;
  std::unique_ptr<Loader<T>> train_loader_;
  std::int64_t batchaccum_ = 1;
  std::unique_ptr<DinoTrainer<T, B>> trainer_;
  std::unique_ptr<io::MetricsLogger> metrics_;
  Ctx<B> ctx_;
  std::vector<TensorT> crops_;
  TensorT target_logits_;
  std::vector<T> cent_host_;
  std::int64_t validations_ = 0;
  RunPosition pos_;  // where fit() starts: 0 or the resumed checkpoint's position
  std::map<std::string, Best> best_;
  std::unique_ptr<RunTrackers<T, B>> trackers_;
  double last_rank_ = NAN;  // train/feat/embed/s_x.rank() of the last logged step, for --save_ckpt rank_min
};

}  // namespace dino

// The trackers and savers a training run feeds (spec §11, §12.1, §12.2, A11, A12): the FeatureTracker (and
// its histograms with --track_feathist), the ParamTracker ×3, the AccuracyTracker, the GradVarTracker
// (--track_gradvar), the ParamStatSaver (--save_paramstats) and the FeatureSaver (--save_features).
//
// Costs decide two things the testbed does differently: the training figures are computed on the logged steps
// only (every --log_every micro-batches; they appear in no other row), and the validation's feature figures
// come from its first batch (the same images at every validation: the test split is read in order), where the
// testbed averages them over every batch. valid/s_acc counts every batch.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dino/data/loader.hpp"
#include "dino/io/feature_table.hpp"
#include "dino/io/metrics.hpp"
#include "dino/io/param_stats.hpp"
#include "dino/io/state_io.hpp"
#include "dino/train/accuracy_tracker.hpp"
#include "dino/train/feature_tracker.hpp"
#include "dino/train/grad_var.hpp"
#include "dino/train/param_tracker.hpp"
#include "dino/train/step.hpp"

namespace dino {

using MetricRow = std::map<std::string, double>;
using HistogramRow = std::map<std::string, io::Histogram>;

template <class T, class B>
class RunTrackers {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;

  // At fit start (resumed = false) the parameters are saved to <logdir>/init.safetensors, the reference of the
  // "- init" figures; a resumed run reads them back, and the parameter statistics tables up to resume_step.
  RunTrackers(const Config& c, DinoModel<T, B>& student, DinoModel<T, B>& teacher, DinoTrainer<T, B>& trainer,
              const ImageSet& test_set, std::string logdir, bool resumed, std::int64_t resume_step)
      : c_(c), student_(student), teacher_(teacher), trainer_(trainer), logdir_(std::move(logdir)) {
    const std::string init_path = logdir_ + "/init.safetensors";
    if (resumed) {
      DinoModel<T, B> s0(student.options()), t0(teacher.options());
      const io::Safetensors f = io::Safetensors::load(init_path);
      io::load_state(f, s0.state(), "student");
      io::load_state(f, t0.state(), "teacher");
      params_ = std::make_unique<ParamTracker<T, B>>(s0.state().params, t0.state().params);
    } else {
      std::filesystem::create_directories(logdir_);
      io::Safetensors f;
      io::save_state(f, student.state(), "student");
      io::save_state(f, teacher.state(), "teacher");
      f.metadata["format"] = "pt";
      f.save(init_path);
      params_ = std::make_unique<ParamTracker<T, B>>(student.state().params, teacher.state().params);
    }
    if (c.track_gradvar) gradvar_ = std::make_unique<GradVarTracker<T, B>>();
    const auto wants = [](const std::vector<std::string>& l, const std::string& x) {
      return std::find(l.begin(), l.end(), x) != l.end() || std::find(l.begin(), l.end(), "all") != l.end();
    };
    // "logits" is accepted and does nothing, as in the testbed (spec §1.2).
    if (wants(c.save_paramstats, "student"))
      stat_savers_.push_back({&student, std::make_unique<io::ParamStatSaver>("student", student.state().params)});
    if (wants(c.save_paramstats, "teacher"))
      stat_savers_.push_back({&teacher, std::make_unique<io::ParamStatSaver>("teacher", teacher.state().params)});
    if (resumed)
      for (auto& s : stat_savers_) s.saver->load(logdir_, resume_step);
    for (const char* kind : {"embeddings", "projections", "logits"})
      if (wants(c.save_features, kind)) feature_kinds_.push_back(kind);
    if (!feature_kinds_.empty()) load_fixed_images(test_set);
  }

  // From DinoTrainer's after-backward hook: the raw gradients of micro-batch `micro` (before the freeze and
  // clipping), for the figures of a logged step and the gradient table.
  void after_backward(Ctx<B>& ctx, std::int64_t micro) {
    const NamedStore<T, B>& g = student_.state().params;
    if (logged(micro)) {
      params_->capture_grad(ctx, g);
      if (gradvar_) gradvar_->capture_batch_grad(ctx, g);
    }
    for (auto& s : stat_savers_)
      if (s.saver->has_grads()) s.saver->record_grads(trainer_.global_step() + 1, g);
  }

  bool logged(std::int64_t micro) const { return micro % c_.log_every == 0; }

  // After micro-batch `micro` (DinoTrainer::step has returned, its passes hold the outputs): the figures of a
  // logged step into m/h, and the per-step tables (parameter statistics, feature tables).
  void after_step(Ctx<B>& ctx, std::int64_t micro, const std::vector<const TensorT*>& crops,
                  const StepTargets<T, B>& targets, MetricRow& m, HistogramRow& h) {
    const std::int64_t step = trainer_.global_step();
    if (logged(micro)) {
      features(ctx, "train", true, m, h);
      m["train/s_acc"] = AccuracyCounter{}.add(predictions(ctx), targets_of(ctx, targets));
      for (const auto& [k, v] : params_->metrics(ctx, student_.state().params, teacher_.state().params)) m[k] = v;
      // Last: its per-sample passes overwrite the step's outputs.
      if (gradvar_)
        for (const auto& [k, v] : gradvar_->after_step(ctx, trainer_, student_.state(), crops, targets)) m[k] = v;
    }
    for (auto& s : stat_savers_) s.saver->record_params(step, s.net->state().params);
    if (!feature_kinds_.empty()) save_features(ctx, step);
  }

  // The feature tables of step 0 (the testbed's FeatureSaver at fit start).
  void at_fit_start(Ctx<B>& ctx) {
    if (!feature_kinds_.empty()) save_features(ctx, 0);
  }

  // A validation: begin(), batch() after each DinoTrainer::evaluate, end() adds valid/s_acc and the feature
  // figures of the first batch.
  void validation_begin() {
    valid_acc_.reset();
    valid_batches_ = 0;
    valid_m_.clear();
    valid_h_.clear();
  }
  void validation_batch(Ctx<B>& ctx, const StepTargets<T, B>& targets) {
    if (valid_batches_++ == 0) features(ctx, "valid", true, valid_m_, valid_h_);
    valid_acc_.add(predictions(ctx), targets_of(ctx, targets));
  }
  void validation_end(MetricRow& m, HistogramRow& h) {
    if (valid_batches_ == 0) return;
    m["valid/s_acc"] = valid_acc_.value();
    for (const auto& [k, v] : valid_m_) m[k] = v;
    for (const auto& [k, v] : valid_h_) h[k] = v;
  }

  // The gradient/parameter tables (cumulative, rewritten): at every epoch end, when a run stops, at its end.
  void write_tables() {
    for (auto& s : stat_savers_) s.saver->write(logdir_);
  }

 private:
  // FeatureTracker over the passes of the last step or evaluation: teacher rows [Ct·B, D], student [Cs·B, D].
  void features(Ctx<B>& ctx, const std::string& prefix, bool svd, MetricRow& m, HistogramRow& h) {
    const ModelPass<T, B>& t = trainer_.teacher_pass();
    const ModelPass<T, B>& s = trainer_.student_pass();
    FeatureStatsOptions o;
    o.svd = svd;
    std::map<std::string, std::vector<double>> values;
    for (const char* kind : {"embed", "proje", "logit"}) {
      flat(output(t, kind), flat_t_);
      flat(output(s, kind), flat_s_);
      for (const auto& [k, v] : feature_stats(ctx, prefix, kind, flat_t_, flat_s_, o, c_.track_feathist ? &values : nullptr))
        m[k] = v;
    }
    for (const auto& [k, v] : values) h[k] = io::make_histogram(v);
  }

  // A pass's output of a kind: "embed[dings]", "proje[ctions]", "logit[s]".
  static const TensorT& output(const ModelPass<T, B>& p, const std::string& kind) {
    return kind.compare(0, 5, "embed") == 0 ? p.embeddings : kind.compare(0, 5, "proje") == 0 ? p.projections : p.logits;
  }

  // [C, B, D] -> [C·B, D] (a copy: the passes are the trainer's).
  static void flat(const TensorT& x, TensorT& out) {
    out.resize({x.size(0) * x.size(1), x.size(2)});
    B::copy(out.data(), x.data(), x.numel());
  }

  // The AccuracyTracker's prediction: argmax of the crop-averaged student softmax.
  std::vector<std::int64_t> predictions(Ctx<B>& ctx) { return student_argmax_(ctx, trainer_.student_pass().logits); }

  // Its target: the label (supervised), the argmax of the target logits' softmax, or, in distillation, of the
  // crop-averaged teacher softmax (pseudo-label agreement).
  std::vector<std::int64_t> targets_of(Ctx<B>& ctx, const StepTargets<T, B>& targets) {
    if (targets.logits) return target_argmax_(ctx, *targets.logits);
    if (!targets.labels.empty()) return targets.labels;
    return target_argmax_(ctx, trainer_.teacher_pass().logits);
  }

  // The first 64 images of the test split with the eval transform, and their labels (spec §12.1).
  void load_fixed_images(const ImageSet& test_set) {
    Loader<T> loader(test_set, eval_loader_spec(c_, test_set));
    loader.start(0);
    std::vector<T> pixels;
    Shape shape;
    while (const Batch<T>* b = loader.next()) {
      shape = b->crop_shape(0);
      const Index per_image = shape.numel() / shape[0];
      for (Index i = 0; i < b->size && static_cast<Index>(fixed_labels_.size()) < 64; ++i) {
        pixels.insert(pixels.end(), b->crops[0].data.begin() + i * per_image,
                      b->crops[0].data.begin() + (i + 1) * per_image);
        fixed_labels_.push_back(b->labels[static_cast<std::size_t>(i)]);
      }
      if (fixed_labels_.size() == 64) break;
    }
    shape[0] = static_cast<Index>(fixed_labels_.size());
    fixed_images_ = TensorT::from_host(shape, pixels);
  }

  // Both networks in eval mode on the fixed images (no centre update), one table per requested kind.
  void save_features(Ctx<B>& ctx, std::int64_t step) {
    NoGrad<Ctx<B>> no_grad(ctx);
    const std::vector<const TensorT*> crops{&fixed_images_};
    ModelPass<T, B>* passes = feature_passes_;
    DinoModel<T, B>* nets[2] = {&teacher_, &student_};
    for (int i = 0; i < 2; ++i) {
      nets[i]->train(false);
      nets[i]->forward(ctx, crops, false, passes[i]);
    }
    for (const std::string& kind : feature_kinds_) {
      const TensorT& t = output(passes[0], kind);
      io::write_feature_table(logdir_, kind.substr(0, 5), step, fixed_labels_, t.to_host(),
                              output(passes[1], kind).to_host(), t.size(2));
    }
  }

  struct StatSaver {
    DinoModel<T, B>* net;
    std::unique_ptr<io::ParamStatSaver> saver;
  };

  const Config& c_;
  DinoModel<T, B>& student_;
  DinoModel<T, B>& teacher_;
  DinoTrainer<T, B>& trainer_;
  std::string logdir_;
  std::unique_ptr<ParamTracker<T, B>> params_;
  std::unique_ptr<GradVarTracker<T, B>> gradvar_;
  std::vector<StatSaver> stat_savers_;
  std::vector<std::string> feature_kinds_;
  TensorT fixed_images_;
  ModelPass<T, B> feature_passes_[2];  // teacher, student on the fixed images; reused from step to step
  std::vector<std::int64_t> fixed_labels_;
  TensorT flat_t_, flat_s_;
  CropAveragedArgmax<T, B> student_argmax_, target_argmax_;
  AccuracyCounter valid_acc_;
  std::int64_t valid_batches_ = 0;
  MetricRow valid_m_;
  HistogramRow valid_h_;
};

}  // namespace dino

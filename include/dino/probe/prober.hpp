// The prober: the testbed's dinopl/probing.py `Prober` (spec §10, A8). For the student's and the teacher's
// embeddings (computed by the caller: encoder only, eval mode, train split and test split with the eval
// transform) it runs the linear probe and the kNN probe on the raw features and, with normalize_probe, on
// features standardised by the train statistics, and names the accuracies probe/{who}[/knn] and
// probe/norm/{who}[/knn].
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/tensor.hpp"
#include "dino/probe/knn.hpp"
#include "dino/probe/linear_probe.hpp"
#include "dino/probe/standardize.hpp"

namespace dino::probe {

struct ProbeOptions {
  Index n_classes = 0;     // ds_classes
  Index epochs = 10;       // probing_epochs (0: no linear probe)
  Index k = 20;            // probing_k (0: no kNN probe)
  Index batch_size = 256;  // bs_eval
  bool normalize = true;   // normalize_probe
  std::uint64_t seed = 0;  // prober_seed (the caller draws a fresh one when it is unset)
};

// One feature set's accuracies in [0, 1]; empty for a probe that is switched off (epochs or k = 0).
struct ProbeResult {
  std::optional<double> lin_acc, knn_acc;
};

// The embeddings of one encoder: train [N, E] and valid [M, E] with their labels [N], [M] in [0, n_classes).
template <class T, class B>
struct ProbeFeatures {
  Tensor<T, B> train, valid;
  std::vector<std::int64_t> train_labels, valid_labels;
};

// "probe/student", "probe/student/knn", "probe/norm/teacher", ...: who is "student" or "teacher".
inline std::string probe_metric_name(const std::string& who, bool normalized, bool knn) {
  return std::string("probe/") + (normalized ? "norm/" : "") + who + (knn ? "/knn" : "");
}

// Both probes on one feature set, as given: the linear probe (order and init from o.seed, the same for every
// call) if o.epochs > 0, then the kNN probe if o.k > 0.
template <class T, class B>
ProbeResult probe_features(Ctx<B>& ctx, const Tensor<T, B>& train, const std::vector<std::int64_t>& train_labels,
                           const Tensor<T, B>& valid, const std::vector<std::int64_t>& valid_labels,
                           const ProbeOptions& o) {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  DINO_CHECK(o.epochs >= 0 && o.k >= 0, "prober: probing_epochs and probing_k must be >= 0, got ", o.epochs, " and ",
             o.k);
  DINO_CHECK(o.n_classes > 0, "prober: the number of classes must be positive, got ", o.n_classes);
  DINO_CHECK(train.rank() == 2 && valid.rank() == 2 && train.size(1) == valid.size(1), "prober: train ",
             train.shape().str(), " and valid ", valid.shape().str(), " must be [N, E] and [M, E] with the same E");
  DINO_CHECK(train.size(0) > 0 && valid.size(0) > 0, "prober: no train or no valid rows (", train.size(0), " and ",
             valid.size(0), ")");
  detail::check_labels("prober train", train_labels, train.size(0), o.n_classes);
  detail::check_labels("prober valid", valid_labels, valid.size(0), o.n_classes);
  ProbeResult r;
  if (o.epochs > 0) {
    LinearProbeOptions lo;
    lo.n_classes = o.n_classes;
    lo.epochs = o.epochs;
    lo.batch_size = o.batch_size;
    r.lin_acc = linear_probe_accuracy(ctx, train, train_labels, valid, valid_labels, lo, o.seed);
  }
  if (o.k > 0) {
    KnnOptions ko;
    ko.k = o.k;
    r.knn_acc = knn_accuracy(ctx, train, train_labels, valid, valid_labels, ko);
  }
  return r;
}

// Adds one encoder's metrics to `metrics`: probe/{who} and probe/{who}/knn on the raw features, and with
// o.normalize probe/norm/{who} and probe/norm/{who}/knn on standardised copies (f is left unchanged).
template <class T, class B>
void probe_encoder(Ctx<B>& ctx, const std::string& who, const ProbeFeatures<T, B>& f, const ProbeOptions& o,
                   std::map<std::string, double>& metrics) {
  auto put = [&](const ProbeResult& r, bool normalized) {
    if (r.lin_acc) metrics[probe_metric_name(who, normalized, false)] = *r.lin_acc;
    if (r.knn_acc) metrics[probe_metric_name(who, normalized, true)] = *r.knn_acc;
  };
  put(probe_features(ctx, f.train, f.train_labels, f.valid, f.valid_labels, o), false);
  if (!o.normalize || (o.epochs == 0 && o.k == 0)) return;
  Tensor<T, B> train = f.train.clone(), valid = f.valid.clone();
  normalize_data(ctx, train, valid);
  put(probe_features(ctx, train, f.train_labels, valid, f.valid_labels, o), true);
}

// The prober's metrics for the student and the teacher encoder (spec §10's names, values in [0, 1]).
template <class T, class B>
std::map<std::string, double> probe_metrics(Ctx<B>& ctx, const ProbeFeatures<T, B>& student,
                                            const ProbeFeatures<T, B>& teacher, const ProbeOptions& o) {
  std::map<std::string, double> metrics;
  probe_encoder(ctx, "student", student, o, metrics);
  probe_encoder(ctx, "teacher", teacher, o, metrics);
  return metrics;
}

}  // namespace dino::probe

// The multicrop losses of spec 6.2 with A4: CE, KL and H_pred (the testbed's dinopl/core.py
// `DINO.multicrop_loss`, i.e. multicrop_loss_clf) and MSE on logits (multicrop_loss_reg), for teacher
// logits, labels (one-hot) and 2-D target logits, with their gradient with respect to the student logits.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "dino/core/tensor.hpp"
#include "dino/loss/pairing.hpp"

namespace dino {

// --loss: the value minimised. CE and KL share their gradient; H_pred is the student's own entropy.
enum class LossKind { CE, KL, HPred, MSE };

// "CE", "KL", "H_pred" or "MSE".
inline LossKind parse_loss_kind(const std::string& s) {
  if (s == "CE") return LossKind::CE;
  if (s == "KL") return LossKind::KL;
  if (s == "H_pred") return LossKind::HPred;
  if (s == "MSE") return LossKind::MSE;
  fail("unknown loss '", s, "': expected CE, KL, H_pred or MSE");
}
inline const char* loss_kind_name(LossKind k) {
  return k == LossKind::CE ? "CE" : k == LossKind::KL ? "KL" : k == LossKind::HPred ? "H_pred" : "MSE";
}

struct LossOptions {
  LossKind kind = LossKind::CE;
  Pairing pairing = Pairing::Opposite;
  std::vector<Index> t_idx;  // crop indices of the teacher slots, e.g. {0, 1}
  std::vector<Index> s_idx;  // crop indices of the student slots, e.g. {0, 1, 2, 3, 4, 5}
};

// Every value of one loss evaluation, whatever kind is minimised (spec A4: all are reported).
struct LossValues {
  double loss = 0;    // the selected kind's value
  double CE = 0;      // mean over pairs and batch of -sum q log p
  double KL = 0;      // CE - H_targ per pair and sample, same mean
  double H_pred = 0;  // mean over student crops and batch of the student's entropy
  double H_targ = 0;  // mean over teacher slots and batch of the target entropy (0 for labels)
  double MSE = 0;     // mean over pairs, batch and classes of (t - s)^2 on logits
  Index n_pairs = 0;
  std::vector<double> H_preds;  // [C_s] batch mean of the student entropy per student crop
  std::vector<double> H_targs;  // [C_t] batch mean of the target entropy per teacher slot
};

template <class T, class B>
class MulticropLoss {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;

  // Pairs are fixed here: a layout without any pair is an error now, not at the first step.
  explicit MulticropLoss(LossOptions o) : o_(std::move(o)), pairs_(make_pairs(o_.t_idx, o_.s_idx, o_.pairing)) {}

  const LossOptions& options() const { return o_; }
  const std::vector<CropPair>& pairs() const { return pairs_; }

  // s [C_s, B, K] student logits; targets either teacher logits [C_t, B, K] (distillation) or target logits
  // [B, K] (logit noise, inputs as logits), broadcast to every teacher slot. If dlogits is not null it is
  // overwritten with grad_scale * d(selected loss) / d s, [C_s, B, K] (a tensor other than s).
  LossValues compute(Ctx<B>& ctx, const TensorT& s, const TensorT& targets, TensorT* dlogits = nullptr,
                     double grad_scale = 1.0) {
    const Dims d = check_student(s);
    const Index ct = static_cast<Index>(o_.t_idx.size());
    if (targets.rank() == 3) {
      DINO_CHECK(targets.size(0) == ct && targets.size(1) == d.b && targets.size(2) == d.k,
                 "multicrop loss: teacher logits must be [", ct, ", ", d.b, ", ", d.k, "] (teacher crops, batch, ",
                 "out_dim), got ", targets.shape().str());
      slots_ = ct;
    } else {
      DINO_CHECK(targets.rank() == 2 && targets.size(0) == d.b, "multicrop loss: targets must be teacher logits [", ct,
                 ", ", d.b, ", ", d.k, "] or target logits [", d.b, ", n], got ", targets.shape().str());
      DINO_CHECK(targets.size(1) == d.k, "multicrop loss: target logits have n = ", targets.size(1),
                 " classes but the head's out_dim is ", d.k, " (they must be equal)");
      slots_ = 1;
    }
    logq_.resize({slots_, d.b, d.k});
    q_.resize({slots_, d.b, d.k});
    h_t_.resize({slots_, d.b});
    B::log_softmax_rows(ctx, targets.data(), slots_ * d.b, d.k, logq_.data(), h_t_.data());
    B::exp_map(ctx, logq_.data(), logq_.numel(), q_.data());
    return finish(ctx, s, d, targets.data(), dlogits, grad_scale);
  }

  // Supervised with class labels [B] (each in [0, K)): one_hot(y, K) in every teacher slot, entropy 0.
  LossValues compute(Ctx<B>& ctx, const TensorT& s, const std::vector<std::int64_t>& labels, TensorT* dlogits = nullptr,
                     double grad_scale = 1.0) {
    const Dims d = check_student(s);
    DINO_CHECK(static_cast<Index>(labels.size()) == d.b, "multicrop loss: ", labels.size(), " labels for a batch of ",
               d.b);
    labels_host_.resize(labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
      DINO_CHECK(labels[i] >= 0 && labels[i] < d.k, "multicrop loss: label ", labels[i], " of sample ", i,
                 " is outside [0, out_dim = ", d.k, "): out_dim must be at least the number of classes");
      labels_host_[i] = static_cast<T>(labels[i]);
    }
    slots_ = 1;
    labels_.resize({d.b});
    B::copy_from_host(labels_.data(), labels_host_.data(), d.b);
    q_.resize({1, d.b, d.k});
    B::one_hot_rows(ctx, labels_.data(), d.b, d.k, q_.data());
    h_t_.resize({1, d.b});
    h_t_.fill(T(0));
    return finish(ctx, s, d, q_.data(), dlogits, grad_scale);
  }

  // After compute: log_softmax of the student logits [C_s, B, K] and the target probabilities
  // [C_t or 1, B, K] (1 when one target is broadcast to every slot).
  const TensorT& student_log_probs() const { return logp_s_; }
  const TensorT& target_probs() const { return q_; }

 private:
  struct Dims {
    Index cs, b, k;
  };

  Dims check_student(const TensorT& s) const {
    const Index cs = static_cast<Index>(o_.s_idx.size());
    DINO_CHECK(s.rank() == 3 && s.size(0) == cs && s.size(1) > 0 && s.size(2) > 0,
               "multicrop loss: student logits must be [", cs, ", B, K] (", cs, " student crops, B and K > 0), got ",
               s.shape().str());
    return {cs, s.size(1), s.size(2)};
  }

  // Pair p's target rows: slot i of q / raw targets, or the one broadcast slot.
  Index slot_offset(Index i, const Dims& d) const { return (slots_ == 1 ? 0 : i) * d.b * d.k; }

  // raw: the targets the MSE compares with (teacher or target logits, or the one-hot rows).
  LossValues finish(Ctx<B>& ctx, const TensorT& s, const Dims& d, const T* raw, TensorT* dlogits, double grad_scale) {
    const Index n_pairs = static_cast<Index>(pairs_.size()), bk = d.b * d.k;
    logp_s_.resize(s.shape());
    h_s_.resize({d.cs, d.b});
    B::log_softmax_rows(ctx, s.data(), d.cs * d.b, d.k, logp_s_.data(), h_s_.data());
    ce_.resize({n_pairs, d.b});
    mse_.resize({n_pairs, d.b});
    for (Index p = 0; p < n_pairs; ++p) {
      const CropPair& pr = pairs_[static_cast<std::size_t>(p)];
      B::cross_entropy_rows(ctx, q_.data() + slot_offset(pr.t, d), logp_s_.data() + pr.s * bk, d.b, d.k,
                            ce_.data() + p * d.b);
      B::mse_rows(ctx, raw + slot_offset(pr.t, d), s.data() + pr.s * bk, d.b, d.k, mse_.data() + p * d.b);
    }

    // The few row values come to the host; means are taken there in double, batch first, in a fixed order.
    const auto& ce = host(ce_, ce_h_);
    const auto& mse = host(mse_, mse_h_);
    const auto& hs = host(h_s_, hs_h_);
    const auto& ht = host(h_t_, ht_h_);
    const double inv_b = 1.0 / static_cast<double>(d.b);
    LossValues v;
    v.n_pairs = n_pairs;
    for (Index p = 0; p < n_pairs; ++p) {
      const Index i = slots_ == 1 ? 0 : pairs_[static_cast<std::size_t>(p)].t;
      double c = 0, kl = 0, m = 0;
      for (Index b = 0; b < d.b; ++b) {
        const double cpb = ce[static_cast<std::size_t>(p * d.b + b)];
        c += cpb;
        kl += cpb - static_cast<double>(ht[static_cast<std::size_t>(i * d.b + b)]);
        m += mse[static_cast<std::size_t>(p * d.b + b)];
      }
      v.CE += c * inv_b;
      v.KL += kl * inv_b;
      v.MSE += m * inv_b;
    }
    v.CE /= static_cast<double>(n_pairs);
    v.KL /= static_cast<double>(n_pairs);
    v.MSE /= static_cast<double>(n_pairs);
    v.H_preds = batch_means(hs, d.cs, d.b);
    for (double h : v.H_preds) v.H_pred += h;
    v.H_pred /= static_cast<double>(d.cs);
    const auto per_slot = batch_means(ht, slots_, d.b);
    const Index ct = static_cast<Index>(o_.t_idx.size());
    for (Index i = 0; i < ct; ++i) v.H_targs.push_back(per_slot[static_cast<std::size_t>(slots_ == 1 ? 0 : i)]);
    for (double h : v.H_targs) v.H_targ += h;
    v.H_targ /= static_cast<double>(ct);
    v.loss = o_.kind == LossKind::CE      ? v.CE
             : o_.kind == LossKind::KL    ? v.KL
             : o_.kind == LossKind::HPred ? v.H_pred
                                          : v.MSE;

    if (dlogits) {
      DINO_CHECK(dlogits != &s, "multicrop loss: dlogits must not be the student logits tensor");
      backward(ctx, s, d, raw, *dlogits, grad_scale);
    }
    return v;
  }

  // The tensor's values in a reused host vector.
  static const std::vector<T>& host(const TensorT& t, std::vector<T>& h) {
    h.resize(static_cast<std::size_t>(t.numel()));
    B::copy_to_host(h.data(), t.data(), t.numel());
    return h;
  }

  static std::vector<double> batch_means(const std::vector<T>& rows, Index n, Index b) {
    std::vector<double> out(static_cast<std::size_t>(n), 0.0);
    for (Index i = 0; i < n; ++i) {
      double sum = 0;
      for (Index j = 0; j < b; ++j) sum += rows[static_cast<std::size_t>(i * b + j)];
      out[static_cast<std::size_t>(i)] = sum / static_cast<double>(b);
    }
    return out;
  }

  // The means' weights follow torch's chain (loss / accumulation, then 1/pairs, then 1/batch), in T.
  void backward(Ctx<B>& ctx, const TensorT& s, const Dims& d, const T* raw, TensorT& ds, double grad_scale) {
    const Index n_pairs = static_cast<Index>(pairs_.size()), bk = d.b * d.k;
    ds.resize(s.shape());
    const T scale = static_cast<T>(grad_scale);
    if (o_.kind == LossKind::HPred) {
      const T w = scale / static_cast<T>(d.cs) / static_cast<T>(d.b);
      B::entropy_backward_rows(ctx, logp_s_.data(), h_s_.data(), d.cs * d.b, d.k, w, ds.data());
      return;
    }
    ds.fill(T(0));
    if (o_.kind == LossKind::MSE) {
      const T coef = T(2) * (scale / static_cast<T>(n_pairs) / static_cast<T>(d.b) / static_cast<T>(d.k));
      for (const CropPair& pr : pairs_)
        B::squared_diff_backward(ctx, raw + slot_offset(pr.t, d), s.data() + pr.s * bk, bk, coef,
                                 ds.data() + pr.s * bk);
      return;
    }
    // CE and KL: the gradient with respect to log p is -w * (sum of the paired targets); then through
    // log_softmax, row by row.
    const T w = scale / static_cast<T>(n_pairs) / static_cast<T>(d.b);
    for (const CropPair& pr : pairs_) B::axpy(ctx, -w, q_.data() + slot_offset(pr.t, d), ds.data() + pr.s * bk, bk);
    B::log_softmax_backward_rows(ctx, logp_s_.data(), ds.data(), d.cs * d.b, d.k, ds.data());
  }

  LossOptions o_;
  std::vector<CropPair> pairs_;
  Index slots_ = 1;  // target slots held in q_ / logq_: C_t, or 1 for a broadcast target
  TensorT logp_s_, h_s_, logq_, q_, h_t_, ce_, mse_, labels_;
  std::vector<T> labels_host_, ce_h_, mse_h_, hs_h_, ht_h_;
};

}  // namespace dino

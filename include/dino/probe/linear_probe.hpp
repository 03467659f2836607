// The linear probe: the testbed's dinopl/probing.py `LinearAnalysis` (spec §10, A8): Linear(E -> C)
// initialised U(+-1/sqrt(E)), trained with torch.optim.AdamW (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight
// decay 0.01 on weight and bias) on softmax cross-entropy (F.cross_entropy, mean over the batch) for some
// epochs over one fixed batch order; prediction = argmax, ties to the smallest class.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/random.hpp"
#include "dino/layers/linear.hpp"
#include "dino/optim/optimizer.hpp"
#include "dino/probe/knn.hpp"

namespace dino::probe {

struct LinearProbeOptions {
  Index n_classes = 0;     // ds_classes
  Index epochs = 10;       // probing_epochs
  Index batch_size = 256;  // bs_eval
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
};

// A uniformly random permutation of [0, n) (Fisher-Yates from the back).
inline std::vector<Index> random_permutation(Index n, Generator& gen) {
  std::vector<Index> p(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  for (Index i = n - 1; i > 0; --i)
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(gen.below(static_cast<std::uint64_t>(i + 1)))]);
  return p;
}

// Index of the largest value of each row of x [rows, cols] (host), ties and NaN as torch.argmax: the first
// maximum, a NaN counting as larger than every number.
template <class T>
std::vector<std::int64_t> argmax_rows(const std::vector<T>& x, Index rows, Index cols) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(rows));
  for (Index r = 0; r < rows; ++r) {
    const T* row = x.data() + r * cols;
    Index best = 0;
    for (Index j = 1; j < cols && !std::isnan(row[best]); ++j)
      if (std::isnan(row[j]) || row[j] > row[best]) best = j;
    out[static_cast<std::size_t>(r)] = best;
  }
  return out;
}

template <class T, class B>
class LinearProbe {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  // Registers "weight" [C, E] and "bias" [C] (zeros until reset_parameters or a caller writes them).
  LinearProbe(Index embed_dim, const LinearProbeOptions& o)
      : o_(checked(embed_dim, o)), linear_(state_, "", {embed_dim, o.n_classes, true, false}) {
    state_.finalize();
    linear_.set_needs_input_grad(false);
  }
  LinearProbe(const LinearProbe&) = delete;
  LinearProbe& operator=(const LinearProbe&) = delete;

  // torch.nn.Linear's init: weight, then bias, U(-1/sqrt(E), 1/sqrt(E)) from gen.
  void reset_parameters(Generator& gen) { linear_.reset_parameters(gen); }

  NamedStore<T, B>& params() { return state_.params; }
  const LinearProbeOptions& options() const { return o_; }

  // Trains o.epochs passes over the rows of train [N, E] (labels [N] in [0, C)) in `order` (a permutation of
  // [0, N), the same in every epoch, as the testbed's once-shuffled stored batches), in batches of
  // o.batch_size (the last one smaller), from the current parameters with a fresh AdamW state.
  void fit(Ctx<B>& ctx, const Tensor<T, B>& train, const std::vector<std::int64_t>& labels,
           const std::vector<Index>& order) {
    check_features("train", train);
    const Index n = train.size(0), e = train.size(1), c = o_.n_classes;
    detail::check_labels("linear probe train", labels, n, c);
    check_order(order, n);
    if (o_.epochs == 0 || n == 0) return;

    // The rows and labels (as T, for one_hot_rows) in batch order, once: every batch is then a contiguous range.
    const std::vector<T> host = train.to_host();
    std::vector<T> rows(static_cast<std::size_t>(n * e)), ys(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) {
      const Index src = order[static_cast<std::size_t>(i)];
      std::copy(host.begin() + src * e, host.begin() + (src + 1) * e, rows.begin() + i * e);
      ys[static_cast<std::size_t>(i)] = static_cast<T>(labels[static_cast<std::size_t>(src)]);
    }
    const auto x_all = Tensor<T, B>::from_host({n, e}, rows);
    const auto y_all = Tensor<T, B>::from_host({n}, ys);

    OptimizerOptions oo;
    oo.kind = OptimizerKind::adamw;
    oo.beta1 = o_.beta1;
    oo.beta2 = o_.beta2;
    oo.eps = o_.eps;
    Optimizer<T, B> opt(state_.params, oo);
    const GroupHyper hyper{o_.lr, o_.weight_decay};  // both groups: the probe decays its bias too
    Tensor<T, B> x, logits, logp, g, dlogits, dx;
    Saved<T, B> saved;
    for (Index epoch = 0; epoch < o_.epochs; ++epoch) {
      for (Index s = 0; s < n; s += o_.batch_size) {
        const Index b = std::min(o_.batch_size, n - s);
        x.resize({b, e});
        B::copy(x.data(), x_all.data() + s * e, b * e);
        linear_.forward(ctx, x, logits, saved);
        logp.resize({b, c});
        B::log_softmax_rows(ctx, logits.data(), b, c, logp.data(), static_cast<T*>(nullptr));
        // d mean_i(-log p_i[y_i]) / d logp = -one_hot / b (nll_loss's backward: -1 / total_weight at the
        // target), then through log_softmax: dlogits = g - softmax * sum(g).
        g.resize({b, c});
        B::one_hot_rows(ctx, y_all.data() + s, b, c, g.data());
        B::scale(ctx, -(T(1) / static_cast<T>(b)), g.data(), b * c);
        dlogits.resize({b, c});
        B::log_softmax_backward_rows(ctx, logp.data(), g.data(), b, c, dlogits.data());
        state_.params.zero_grad();
        linear_.backward(ctx, dlogits, dx, saved);
        opt.step(ctx, hyper, hyper);
      }
    }
  }

  // Predicted classes [M] of x [M, E]: the argmax of the logits, ties to the smallest class.
  std::vector<std::int64_t> predict(Ctx<B>& ctx, const Tensor<T, B>& x) {
    check_features("input", x);
    NoGrad<Ctx<B>> no_grad(ctx);
    Tensor<T, B> logits;
    Saved<T, B> saved;
    linear_.forward(ctx, x, logits, saved);
    return argmax_rows(logits.to_host(), x.size(0), o_.n_classes);
  }

 private:
  static const LinearProbeOptions& checked(Index embed_dim, const LinearProbeOptions& o) {
    DINO_CHECK(embed_dim > 0, "linear probe: the embedding size must be positive, got ", embed_dim);
    DINO_CHECK(o.n_classes > 0, "linear probe: the number of classes must be positive, got ", o.n_classes);
    DINO_CHECK(o.epochs >= 0, "linear probe: epochs must be >= 0, got ", o.epochs);
    DINO_CHECK(o.batch_size > 0, "linear probe: the batch size must be positive, got ", o.batch_size);
    return o;
  }
  void check_features(const char* what, const Tensor<T, B>& x) const {
    const Index e = linear_.options().in;
    DINO_CHECK(x.rank() == 2 && x.size(1) == e, "linear probe: the ", what, " features must be [rows, ", e, "], got ",
               x.shape().str());
  }
  static void check_order(const std::vector<Index>& order, Index n) {
    DINO_CHECK(static_cast<Index>(order.size()) == n, "linear probe: a batch order of ", order.size(),
               " indices for ", n, " train rows");
    std::vector<char> seen(static_cast<std::size_t>(n), 0);
    for (Index i : order) {
      DINO_CHECK(i >= 0 && i < n && !seen[static_cast<std::size_t>(i)], "linear probe: the batch order is not a "
                 "permutation of [0, ", n, ") (index ", i, ")");
      seen[static_cast<std::size_t>(i)] = 1;
    }
  }

  LinearProbeOptions o_;
  ModelState<T, B> state_;
  Linear<T, B> linear_;
};

// The linear probe's accuracy on valid [M, E] (labels [M]) after training on train [N, E] (labels [N]):
// the batch order is a permutation from Generator(seed, purpose::probe, 0, 0), the init drawn from
// Generator(seed, purpose::probe, 0, 1); the same seed gives the same order and init on every call.
template <class T, class B>
double linear_probe_accuracy(Ctx<B>& ctx, const Tensor<T, B>& train, const std::vector<std::int64_t>& train_labels,
                             const Tensor<T, B>& valid, const std::vector<std::int64_t>& valid_labels,
                             const LinearProbeOptions& o, std::uint64_t seed) {
  DINO_CHECK(train.rank() == 2, "linear probe: the train features must be [N, E], got ", train.shape().str());
  DINO_CHECK(valid.rank() == 2, "linear probe: the valid features must be [M, E], got ", valid.shape().str());
  detail::check_labels("linear probe valid", valid_labels, valid.size(0), o.n_classes);
  LinearProbe<T, B> probe(train.size(1), o);
  Generator order_gen(seed, purpose::probe, 0, 0), init_gen(seed, purpose::probe, 0, 1);
  probe.reset_parameters(init_gen);
  probe.fit(ctx, train, train_labels, random_permutation(train.size(0), order_gen));
  return accuracy(probe.predict(ctx, valid), valid_labels);
}

}  // namespace dino::probe

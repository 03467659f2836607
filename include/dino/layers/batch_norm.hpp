// BatchNorm1d ([N, C] or [N, C, L]) and BatchNorm2d ([N, C, H, W]) as torch.nn.BatchNorm1d/2d with
// affine=True and track_running_stats=True (torch 1.13): train mode normalises with the batch statistics and
// updates the running ones, eval mode normalises with the running statistics.
#pragma once
#include <cstdint>

#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class BatchNorm : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index num_features = 0;
    double eps = 1e-5;
    double momentum = 0.1;
  };

  // spatial_dims: 1 for BatchNorm1d (accepts rank 2 or 3), 2 for BatchNorm2d (rank 4).
  // Registers the parameters "<name>.weight", "<name>.bias" [C], the buffers "<name>.running_mean",
  // "<name>.running_var" [C] and the counter "<name>.num_batches_tracked", in the order of torch's state_dict.
  BatchNorm(ModelState<T, B>& state, const std::string& name, Options o, int spatial_dims)
      : Base(name), o_(o), spatial_dims_(spatial_dims), state_(state) {
    DINO_CHECK(spatial_dims == 1 || spatial_dims == 2, "BatchNorm '", name, "': spatial_dims must be 1 or 2, got ",
               spatial_dims);
    DINO_CHECK(o.num_features > 0, kind(), " '", name, "': num_features must be positive, got ", o.num_features);
    DINO_CHECK(o.eps >= 0 && o.momentum >= 0 && o.momentum <= 1, kind(), " '", name,
               "': expected eps >= 0 and momentum in [0, 1], got eps=", o.eps, " momentum=", o.momentum);
    weight_ = state.params.add(this->child_name("weight"), {o.num_features});
    bias_ = state.params.add(this->child_name("bias"), {o.num_features});
    running_mean_ = state.buffers.add(this->child_name("running_mean"), {o.num_features});
    running_var_ = state.buffers.add(this->child_name("running_var"), {o.num_features});
    counter_ = state.add_counter(this->child_name("num_batches_tracked"));
  }

  const Options& options() const { return o_; }
  // "BatchNorm1d" or "BatchNorm2d", the torch class name.
  const char* kind() const { return spatial_dims_ == 1 ? "BatchNorm1d" : "BatchNorm2d"; }
  Index weight_id() const { return weight_; }
  Index bias_id() const { return bias_; }
  Index running_mean_id() const { return running_mean_; }
  Index running_var_id() const { return running_var_; }
  Index num_batches_tracked_id() const { return counter_; }
  std::int64_t num_batches_tracked() const { return state_.counters.at(static_cast<std::size_t>(counter_)).second; }

  Shape output_shape(const Shape& in) const override {
    const bool rank_ok = spatial_dims_ == 1 ? (in.rank() == 2 || in.rank() == 3) : in.rank() == 4;
    if (!rank_ok || in[1] != o_.num_features) {
      const std::string c = std::to_string(o_.num_features);
      fail(kind(), " '", this->name_, "' expects ",
           spatial_dims_ == 1 ? "[N, " + c + "] or [N, " + c + ", L]" : "[N, " + c + ", H, W]", ", got ", in.str());
    }
    return in;
  }

  // As torch.nn.BatchNorm*d's construction: weight 1, bias 0, running_mean 0, running_var 1, counter 0.
  void reset_parameters(Generator& gen) override {
    (void)gen;
    const Index c = o_.num_features;
    B::fill(state_.params.value(weight_), c, T(1));
    B::fill(state_.params.value(bias_), c, T(0));
    B::fill(state_.buffers.value(running_mean_), c, T(0));
    B::fill(state_.buffers.value(running_var_), c, T(1));
    state_.counter(counter_) = 0;
  }

  // x [N, C, *] -> y of the same shape. Train mode: batch statistics (biased variance); running_mean and
  // running_var move by momentum towards the batch mean and unbiased variance, num_batches_tracked += 1
  // (also without grad, as torch). Eval mode: running statistics, buffers untouched.
  // Saved: tensor 0 = [2, C] batch mean and invstd of a train-mode forward (else empty), tensor 1 = [2, C]
  // running mean and invstd of an eval-mode forward (else empty); which one is filled tells backward the mode
  // the forward ran in. Tensor 2 = [2, C] per-channel gradient sums of backward.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    y.resize(output_shape(x.shape()));
    const Dims d = dims(x.shape());
    TensorT& batch = saved.tensor(0);
    TensorT& running = saved.tensor(1);
    T* rm = state_.buffers.value(running_mean_);
    T* rv = state_.buffers.value(running_var_);
    TensorT* stats = nullptr;
    if (this->training_) {
      DINO_CHECK(d.n * d.s > 1, kind(), " '", this->name_,
                 "': expected more than 1 value per channel when training, got input size ", x.shape().str());
      batch.resize({2, d.c});
      running.resize({0});
      B::batch_norm_stats(ctx, x.data(), d.n, d.c, d.s, T(o_.eps), T(o_.momentum), rm, rv, batch.data(),
                          batch.data() + d.c);
      ++state_.counter(counter_);
      stats = &batch;
    } else {
      running.resize({2, d.c});
      batch.resize({0});
      B::batch_norm_running_stats(ctx, rm, rv, d.c, T(o_.eps), running.data(), running.data() + d.c);
      stats = &running;
    }
    B::batch_norm_forward(ctx, x.data(), d.n, d.c, d.s, stats->data(), stats->data() + d.c,
                          state_.params.value(weight_), state_.params.value(bias_), y.data());
    this->keep(ctx, x, y, saved);
  }

  // Adds into dweight, dbias; overwrites dx [N, C, *]. After a train-mode forward the gradient flows through
  // the batch statistics; after an eval-mode forward only through the affine map.
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    const TensorT& x = *saved.x;
    DINO_CHECK(dy.shape() == x.shape(), kind(), " '", this->name_, "': gradient shape ", dy.shape().str(),
               " does not match the output ", x.shape().str());
    const Dims d = dims(x.shape());
    const bool batch_stats = !saved.tensor(0).empty();
    const TensorT& stats = batch_stats ? saved.tensor(0) : saved.tensor(1);
    TensorT& sums = saved.tensor(2);
    sums.resize({2, d.c});
    const T* mean = stats.data();
    const T* invstd = stats.data() + d.c;
    B::batch_norm_backward_reduce(ctx, dy.data(), x.data(), d.n, d.c, d.s, mean, invstd, sums.data(),
                                  sums.data() + d.c, state_.params.grad(weight_), state_.params.grad(bias_));
    if (!this->needs_input_grad_) return;
    dx.resize(x.shape());
    B::batch_norm_backward_input(ctx, dy.data(), x.data(), d.n, d.c, d.s, mean, invstd, state_.params.value(weight_),
                                 sums.data(), sums.data() + d.c, batch_stats, dx.data());
  }

 private:
  struct Dims {
    Index n, c, s;
  };
  // [N, C, S] with S the product of the dimensions after C.
  static Dims dims(const Shape& in) {
    Index s = 1;
    for (int i = 2; i < in.rank(); ++i) s *= in[i];
    return {in[0], in[1], s};
  }

  Options o_;
  int spatial_dims_;
  ModelState<T, B>& state_;
  Index weight_ = -1, bias_ = -1, running_mean_ = -1, running_var_ = -1, counter_ = -1;
};

// torch.nn.BatchNorm1d: [N, C] or [N, C, L].
template <class T, class B>
class BatchNorm1d : public BatchNorm<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using Options = typename BatchNorm<T, B>::Options;
  BatchNorm1d(ModelState<T, B>& state, const std::string& name, Options o) : BatchNorm<T, B>(state, name, o, 1) {}
};

// torch.nn.BatchNorm2d: [N, C, H, W].
template <class T, class B>
class BatchNorm2d : public BatchNorm<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using Options = typename BatchNorm<T, B>::Options;
  BatchNorm2d(ModelState<T, B>& state, const std::string& name, Options o) : BatchNorm<T, B>(state, name, o, 2) {}
};

}  // namespace dino

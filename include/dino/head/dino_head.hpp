// DinoHead: MLP -> L2 bottleneck -> centring and temperature, the testbed's dinopl/core.py `DINOHead`
// (spec 4 with A4). Input x [C, B, E] (crops stacked), outputs projections and logits [C, B, K]; the centre
// is the buffer "<prefix>.cent" [K], updated after use with momentum cmom.
#pragma once
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "dino/head/l2_bottleneck.hpp"
#include "dino/head/mlp.hpp"

namespace dino {

// The head's configuration (--hid_dims, --mlp_bn, --mlp_act, --l2bot_dim, --l2bot_cfg, --out_dim). Callers
// replace dimensions <= 0 by the embedding size before building; the head rejects them.
struct HeadOptions {
  Index embed_dim = 0;
  std::vector<Index> hid_dims{2048, 2048};
  bool mlp_bn = false;
  std::string act = "GELU";
  Index l2bot_dim = 256;
  std::string l2bot_cfg = "-/lb/fn/wn/l/-";
  Index out_dim = 65536;
  bool compat_wn_noop = false;  // 'wn' without effect, as the testbed HEAD (spec 15.1); off: spec A4
};

template <class T, class B>
class DinoHead {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;
  using SavedT = Saved<T, B>;

  // Registers the buffer "<prefix>.cent", then "<prefix>.mlp.layer<k>.*" and "<prefix>.last_layer.lin{1,2}.*".
  DinoHead(ModelState<T, B>& state, const std::string& prefix, HeadOptions o)
      : o_(std::move(o)),
        state_(state),
        cent_(state.buffers.add(prefix + ".cent", {checked_out_dim(o_, prefix)})),
        mlp_(state, prefix + ".mlp", {o_.embed_dim, o_.hid_dims, o_.mlp_bn, o_.act}),
        last_(state, prefix + ".last_layer",
              {mlp_.out_dim(), o_.l2bot_dim, o_.out_dim, o_.l2bot_cfg, o_.compat_wn_noop}) {
    DINO_CHECK(last_.out_dim() == o_.out_dim, "head '", prefix, "': l2bot_cfg '", o_.l2bot_cfg,
               "' has no Linear layer, so its output dimension would be the MLP's ", mlp_.out_dim(), ", not out_dim ",
               o_.out_dim);
  }
  DinoHead(const DinoHead&) = delete;
  DinoHead& operator=(const DinoHead&) = delete;

  const HeadOptions& options() const { return o_; }
  Index out_dim() const { return o_.out_dim; }
  Index cent_id() const { return cent_; }
  MLP<T, B>& mlp() { return mlp_; }
  L2Bottleneck<T, B>& last_layer() { return last_; }
  // Parameter ids of lin2 (weight, then bias if any) for the wn freeze of spec 7.5; empty without lin2.
  std::vector<Index> last_layer_lin2_params() const {
    std::vector<Index> ids;
    if (const Linear<T, B>* l = last_.lin2()) {
      ids.push_back(l->weight_id());
      if (l->bias_id() >= 0) ids.push_back(l->bias_id());
    }
    return ids;
  }

  // Set by the caller at every step (schedules t_temp/s_temp, t_cmom/s_cmom); NaN cmom disables the update.
  T temp = T(1);
  T cmom = std::numeric_limits<T>::quiet_NaN();

  void train(bool on = true) {
    mlp_.train(on);
    last_.train(on);
  }
  void eval() { train(false); }
  bool training() const { return mlp_.training(); }
  void set_needs_input_grad(bool on) { mlp_.set_needs_input_grad(on); }

  // Construction-time init (the store must be finalized): trunc_normal(0.02) Linear weights, zero biases,
  // BatchNorm weight 1 / bias 0 / running stats 0, 1, and the centre 0.
  void reset_parameters(Generator& gen) {
    mlp_.reset_parameters(gen);
    last_.initialize(gen, HeadInit::trunc_normal);
    B::fill(state_.buffers.value(cent_), o_.out_dim, T(0));
  }
  // The testbed's head.reset_parameters(method): MLP layers in order, then lin1, lin2; BatchNorm weight 1,
  // bias 0. Buffers (the centre, running statistics) are kept.
  void initialize(Generator& gen, HeadInit method) {
    mlp_.initialize(gen, method);
    last_.initialize(gen, method);
  }

  // x [C, B, E] -> proj [C, B, K] = last_layer(mlp(x)), logits [C, B, K] = (proj - cent) / temp with the
  // centre from before this call. Then, if update_cent and cmom is not NaN, cent = cmom * cent + (1 - cmom) *
  // mean of proj over crops and batch (no gradient; done in no-grad mode too). proj and logits are
  // overwritten; x and proj must stay alive and unchanged until backward. Saved: child 0 = MLP, child 1 =
  // last layer, tensor 0 = MLP output, tensor 1 = column sums for the centre.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& proj, TensorT& logits, SavedT& saved, bool update_cent) {
    DINO_CHECK(x.rank() == 3 && x.size(2) == o_.embed_dim, "head expects embeddings [C, B, ", o_.embed_dim, "], got ",
               x.shape().str());
    TensorT& h = saved.tensor(0);
    mlp_.forward(ctx, x, h, saved.child(0));
    last_.forward(ctx, h, proj, saved.child(1));
    const Index rows = x.size(0) * x.size(1), k = o_.out_dim;
    logits.resize(proj.shape());
    B::center_logits(ctx, proj.data(), state_.buffers.value(cent_), rows, k, temp, logits.data());
    if (update_cent && !std::isnan(static_cast<double>(cmom)) && rows > 0) {
      TensorT& colsum = saved.tensor(1);
      colsum.resize({k});
      B::sum_rows(ctx, proj.data(), rows, k, T(0), colsum.data());
      B::center_update(ctx, state_.buffers.value(cent_), colsum.data(), rows, k, cmom);
    }
    saved.valid = ctx.grad_enabled;
    saved.x = saved.valid ? &x : nullptr;
    saved.y = saved.valid ? &proj : nullptr;
  }

  // dlogits [C, B, K] -> dx [C, B, E] (overwritten); adds into the MLP and last-layer parameter gradients.
  // Divides by the current temp, which must still be the forward's (schedules change it between steps only).
  void backward(Ctx<B>& ctx, const TensorT& dlogits, TensorT& dx, SavedT& saved) {
    DINO_CHECK(saved.valid, "backward of the head without a forward pass in grad mode");
    DINO_CHECK(dlogits.shape() == saved.y->shape(), "head: gradient shape ", dlogits.shape().str(),
               " does not match the logits ", saved.y->shape().str());
    dproj_.resize(dlogits.shape());
    B::center_logits_backward(ctx, dlogits.data(), dlogits.numel(), temp, dproj_.data());
    last_.backward(ctx, dproj_, dh_, saved.child(1));
    mlp_.backward(ctx, dh_, dx, saved.child(0));
  }

 private:
  // Validates the dimensions before anything is registered; returns K.
  static Index checked_out_dim(const HeadOptions& o, const std::string& prefix) {
    DINO_CHECK(o.embed_dim > 0, "head '", prefix, "': embed_dim must be positive, got ", o.embed_dim);
    DINO_CHECK(o.out_dim > 0, "head '", prefix, "': out_dim must be positive, got ", o.out_dim);
    for (std::size_t k = 0; k < o.hid_dims.size(); ++k)
      DINO_CHECK(o.hid_dims[k] > 0, "head '", prefix, "': hid_dims[", k, "] must be positive, got ", o.hid_dims[k]);
    return o.out_dim;
  }

  HeadOptions o_;
  ModelState<T, B>& state_;
  // Registered before the MLP: torch's named_buffers() and state_dict list a module's own buffers first.
  Index cent_;
  MLP<T, B> mlp_;
  L2Bottleneck<T, B> last_;
  TensorT dproj_, dh_;
};

}  // namespace dino

// The DINO head's MLP: per hidden width, Linear -> (BatchNorm1d) -> GELU | ReLU, named as the testbed's
// dinopl/modules/mlp.py `MLP` ("<name>.layer<k>.lin", ".bn", ".act"). BatchNorm normalises over all leading
// rows per feature (crops x batch; spec A4 fixes the testbed's 3-d BatchNorm1d call).
#pragma once
#include <cctype>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "dino/core/init.hpp"
#include "dino/layers/activations.hpp"
#include "dino/layers/batch_norm.hpp"
#include "dino/layers/linear.hpp"

namespace dino {

// How the head's Linear layers are drawn (--head_init_method): trunc_normal(std 0.02) weights and zero
// biases, or torch.nn.Linear's default U(+-1/sqrt(fan_in)) for weights and biases. Named after the flag's
// values ("default" is a keyword).
enum class HeadInit { trunc_normal, default_init };

// "trunc_normal" or "default".
inline HeadInit parse_head_init(const std::string& s) {
  if (s == "trunc_normal") return HeadInit::trunc_normal;
  if (s == "default") return HeadInit::default_init;
  fail("unknown head init method '", s, "': expected trunc_normal or default");
}

namespace detail {
// One head Linear drawn as the testbed's reset_parameters(method) draws it.
template <class T, class B>
void init_head_linear(ModelState<T, B>& st, const Linear<T, B>& lin, Generator& gen, HeadInit method) {
  if (method == HeadInit::trunc_normal) {
    init::trunc_normal(st.params, lin.weight_id(), gen, 0.02);
    if (lin.bias_id() >= 0) init::constant(st.params, lin.bias_id(), 0.0);
  } else {
    const double bound = 1.0 / std::sqrt(static_cast<double>(lin.options().in));
    init::uniform(st.params, lin.weight_id(), gen, -bound, bound);
    if (lin.bias_id() >= 0) init::uniform(st.params, lin.bias_id(), gen, -bound, bound);
  }
}
}  // namespace detail

template <class T, class B>
class MLP : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index in = 0;
    std::vector<Index> hid_dims;  // empty: the identity
    bool batch_norm = false;
    std::string act = "GELU";  // GELU (exact) or ReLU, case-insensitive as the testbed's act_fn.lower()
  };

  // Registers, per layer k, "<name>.layer<k>.lin.weight", ".lin.bias" and with batch_norm
  // "<name>.layer<k>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}".
  MLP(ModelState<T, B>& state, const std::string& name, Options o) : Base(name), o_(std::move(o)), state_(state) {
    DINO_CHECK(o_.in > 0, "MLP '", name, "': the input dimension must be positive, got ", o_.in);
    std::string act = o_.act;
    for (auto& ch : act) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    DINO_CHECK(act == "gelu" || act == "relu", "MLP '", name, "': unknown activation '", o_.act,
               "': expected GELU or ReLU");
    Index in = o_.in;
    for (std::size_t k = 0; k < o_.hid_dims.size(); ++k) {
      const Index out = o_.hid_dims[k];
      DINO_CHECK(out > 0, "MLP '", name, "': hidden dimension ", k, " must be positive, got ", out);
      const std::string layer = this->child_name("layer" + std::to_string(k));
      Layer l;
      l.lin =
          std::make_unique<Linear<T, B>>(state, layer + ".lin", typename Linear<T, B>::Options{in, out, true, false});
      if (o_.batch_norm)
        l.bn = std::make_unique<BatchNorm1d<T, B>>(state, layer + ".bn", typename BatchNorm<T, B>::Options{out});
      if (act == "gelu")
        l.act = std::make_unique<GELU<T, B>>(layer + ".act");
      else
        l.act = std::make_unique<ReLU<T, B>>(layer + ".act");
      layers_.push_back(std::move(l));
      in = out;
    }
    set_needs_input_grad(this->needs_input_grad_);
  }

  const Options& options() const { return o_; }
  Index out_dim() const { return o_.hid_dims.empty() ? o_.in : o_.hid_dims.back(); }
  std::size_t depth() const { return layers_.size(); }
  const Linear<T, B>& linear(std::size_t k) const { return *layers_.at(k).lin; }
  BatchNorm1d<T, B>* batch_norm(std::size_t k) const { return layers_.at(k).bn.get(); }

  Shape output_shape(const Shape& in) const override {
    DINO_CHECK(in.rank() >= 1 && in.size(-1) == o_.in, "MLP '", this->name_, "' expects [..., ", o_.in, "], got ",
               in.str());
    Shape s = in;
    s[s.rank() - 1] = out_dim();
    return s;
  }

  // Construction-time init: trunc_normal Linear weights, zero biases, BatchNorm as torch builds it (weight 1,
  // bias 0, running statistics 0 / 1, counter 0).
  void reset_parameters(Generator& gen) override {
    initialize(gen, HeadInit::trunc_normal);
    for (auto& l : layers_)
      if (l.bn) l.bn->reset_parameters(gen);
  }
  // The testbed's MLP.reset_parameters(method): Linears in layer order; BatchNorm weight 1 and bias 0 (its
  // running statistics are left as they are, as there).
  void initialize(Generator& gen, HeadInit method) {
    for (auto& l : layers_) {
      detail::init_head_linear(state_, *l.lin, gen, method);
      if (l.bn) {
        init::constant(state_.params, l.bn->weight_id(), 1.0);
        init::constant(state_.params, l.bn->bias_id(), 0.0);
      }
    }
  }

  void train(bool on = true) override {
    Base::train(on);
    for (auto& l : layers_) {
      l.lin->train(on);
      if (l.bn) l.bn->train(on);
      l.act->train(on);
    }
  }
  void set_needs_input_grad(bool on) override {
    Base::set_needs_input_grad(on);
    for (std::size_t k = 0; k < layers_.size(); ++k) layers_[k].lin->set_needs_input_grad(k == 0 ? on : true);
  }

  // x [..., in] -> y [..., out_dim]. Intermediates are kept as [rows, width] (rows = product of the leading
  // dimensions), the layout BatchNorm1d normalises over. Saved: per layer k, tensors 3k (Linear output),
  // 3k+1 (BatchNorm output), 3k+2 (activation output, not for the last layer, which writes y); children alike.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    const Shape out_shape = output_shape(x.shape());
    if (layers_.empty()) {
      y.copy_from(x);
      this->keep(ctx, x, y, saved);
      return;
    }
    const Index rows = x.numel() / o_.in;
    const TensorT* in = &x;
    for (std::size_t k = 0; k < layers_.size(); ++k) {
      Layer& l = layers_[k];
      const Index width = o_.hid_dims[k];
      TensorT& h = saved.tensor(3 * k);
      l.lin->forward(ctx, *in, h, saved.child(3 * k));
      h.reshape({rows, width});
      const TensorT* a = &h;
      if (l.bn) {
        l.bn->forward(ctx, h, saved.tensor(3 * k + 1), saved.child(3 * k + 1));
        a = &saved.tensor(3 * k + 1);
      }
      TensorT& out = k + 1 == layers_.size() ? y : saved.tensor(3 * k + 2);
      l.act->forward(ctx, *a, out, saved.child(3 * k + 2));
      in = &out;
    }
    y.reshape(out_shape);
    this->keep(ctx, x, y, saved);
  }

  // Adds into the Linear and BatchNorm parameter gradients; overwrites dx [..., in].
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    DINO_CHECK(dy.shape() == saved.y->shape(), "MLP '", this->name_, "': gradient shape ", dy.shape().str(),
               " does not match the output ", saved.y->shape().str());
    if (layers_.empty()) {
      if (this->needs_input_grad_) dx.copy_from(dy);
      return;
    }
    const Index rows = saved.x->numel() / o_.in;
    const TensorT* g = &dy;
    for (std::size_t k = layers_.size(); k-- > 0;) {
      Layer& l = layers_[k];
      const Index width = o_.hid_dims[k];
      // The activations do not check shapes; the gradient is brought to [rows, width] for BatchNorm and
      // Linear, whose outputs were reshaped so in forward.
      l.act->backward(ctx, *g, g_act_, saved.child(3 * k + 2));
      g_act_.reshape({rows, width});
      const TensorT* gl = &g_act_;
      if (l.bn) {
        l.bn->backward(ctx, g_act_, g_bn_, saved.child(3 * k + 1));
        gl = &g_bn_;
      }
      if (k == 0) {
        l.lin->backward(ctx, *gl, dx, saved.child(0));
      } else {
        l.lin->backward(ctx, *gl, g_lin_, saved.child(3 * k));
        g = &g_lin_;
      }
    }
  }

 private:
  struct Layer {
    std::unique_ptr<Linear<T, B>> lin;
    std::unique_ptr<BatchNorm1d<T, B>> bn;
    std::unique_ptr<Module<T, B>> act;
  };
  Options o_;
  ModelState<T, B>& state_;
  std::vector<Layer> layers_;
  // Backward scratch: activation, BatchNorm and Linear input gradients (three, so no call reads its output).
  TensorT g_act_, g_bn_, g_lin_;
};

}  // namespace dino

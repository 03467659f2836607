// Module<T, B>: the interface every layer and container implements. A network is a tree of modules built at
// run time (the CLI picks the encoder by name), not a nested type.
#pragma once
#include <string>

#include "dino/core/params.hpp"
#include "dino/core/random.hpp"
#include "dino/core/saved.hpp"

namespace dino {

template <class T, class B>
class Module {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;
  using SavedT = Saved<T, B>;

  explicit Module(std::string name) : name_(std::move(name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The output shape for an input shape; throws dino::Error naming the module if the input does not fit.
  virtual Shape output_shape(const Shape& in) const = 0;
  // Computes y (resized as needed) from x. In grad mode it records in `saved` what backward needs; x and y
  // must then stay alive and unchanged until backward. Several forward calls may precede their backwards.
  virtual void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) = 0;
  // Adds into the parameter gradients; overwrites dx (left untouched if needs_input_grad() is false).
  virtual void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) = 0;

  // Initialises parameters and buffers as the PyTorch module's constructor does (drawn from gen on the
  // host); the store must be finalized. Containers pass it on to their children in registration order.
  virtual void reset_parameters(Generator& gen) { (void)gen; }

  // Train/eval mode, as torch.nn.Module.train(); containers pass it on to their children.
  virtual void train(bool on = true) { training_ = on; }
  void eval() { train(false); }
  bool training() const { return training_; }
  // The first module of a network does not need its input gradient; containers pass it to their first child.
  virtual void set_needs_input_grad(bool on) { needs_input_grad_ = on; }
  bool needs_input_grad() const { return needs_input_grad_; }
  // The state_dict prefix of this module ("enc.layer1.0.conv1"), used in error messages and names.
  const std::string& name() const { return name_; }

 protected:
  // Records x and y for backward when the context keeps gradients.
  void keep(const Ctx<B>& ctx, const TensorT& x, const TensorT& y, SavedT& saved) const {
    saved.valid = ctx.grad_enabled;
    saved.x = saved.valid ? &x : nullptr;
    saved.y = saved.valid ? &y : nullptr;
  }
  void require_saved(const SavedT& saved) const {
    DINO_CHECK(saved.valid, "backward of '", name_, "' without a forward pass in grad mode");
  }
  // "name.suffix", or "suffix" for an unnamed module.
  std::string child_name(const std::string& suffix) const { return name_.empty() ? suffix : name_ + "." + suffix; }

  bool training_ = true;
  bool needs_input_grad_ = true;
  std::string name_;
};

}  // namespace dino

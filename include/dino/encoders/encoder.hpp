// Encoder<T, B>: the interface of the testbed's encoders (safelix/dinopl:models/*.py built with
// num_classes=None): images [N, 3, S, S] -> embeddings [N, E], plus the testbed's enc.reset_parameters(gen),
// here initialize(gen), which redraws only the tensors the testbed redraws (spec 3, 5).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "dino/core/init.hpp"
#include "dino/encoders/norm_layer.hpp"
#include "dino/layers/conv2d.hpp"
#include "dino/layers/sequential.hpp"

namespace dino {

// What the registry needs to build an encoder by name (the CLI's --enc, --enc_norm_layer, --tiny_input).
struct EncoderOptions {
  std::string name;        // a name of encoder_names()
  Index img_size = 0;      // S0: the out_size of the first crop; fixes E for Flatten and VGG
  bool tiny_input = false;  // ResNet stem 3x3 stride 1 without max-pool (forced for resnet20/56)
  std::string norm_layer;  // "" = the encoder's default; else a name of norm_layer_names()
  std::string prefix = "enc";  // the state_dict prefix of every parameter
};

template <class T, class B>
class Encoder : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  // arch names the encoder in messages ("resnet20"); prefix is the state_dict prefix ("enc"). The subclass
  // registers its parameters in state, which must outlive the encoder.
  Encoder(ModelState<T, B>& state, const std::string& prefix, std::string arch)
      : Base(prefix), arch_(std::move(arch)), body_(prefix), state_(state) {}

  const std::string& arch() const { return arch_; }
  // E, the width of the embedding.
  Index embed_dim() const { return embed_dim_; }

  // [N, 3, H, W] -> [N, E]; throws naming the encoder if the input does not give E features (Flatten and VGG
  // fix E from the first crop's size, so another crop size cannot pass through them).
  Shape output_shape(const Shape& in) const override {
    DINO_CHECK(in.rank() == 4 && in[1] == 3, "encoder '", arch_, "' expects images [N, 3, H, W], got ", in.str());
    const Shape out = body_.output_shape(in);
    DINO_CHECK(out.rank() == 2 && out[1] == embed_dim_, "encoder '", arch_, "' turns an input ", in.str(), " into ",
               out.str(), " but its embedding size is ", embed_dim_, " (set by the first crop's size)");
    return out;
  }
  // x [N, 3, H, W] -> y [N, E]. Saved: the body's record.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    output_shape(x.shape());
    body_.forward(ctx, x, y, saved);
  }
  // Adds into every parameter gradient; overwrites dx (unless the input gradient is switched off).
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    body_.backward(ctx, dy, dx, saved);
  }

  // Construction-time init of every layer, as PyTorch's constructors (Conv2d U(+-1/sqrt(fan_in)) weight and
  // bias, norms weight 1 bias 0, BatchNorm running stats 0/1 and counter 0).
  void reset_parameters(Generator& gen) override { body_.reset_parameters(gen); }

  // The testbed's enc.reset_parameters(gen): conv weights kaiming_normal(fan_out, relu) in module order, then
  // the encoder's own constants (zeroed conv biases for VGG, norm weight 1 and bias 0 for ResNet and VGG).
  // Buffers are left alone. The store must be finalized.
  virtual void initialize(Generator& gen) {
    for (Index id : kaiming_) init::kaiming_normal_fan_out(state_.params, id, gen);
    for (Index id : ones_) init::constant(state_.params, id, 1.0);
    for (Index id : zeros_) init::constant(state_.params, id, 0.0);
  }

  void train(bool on = true) override {
    Base::train(on);
    body_.train(on);
  }
  void set_needs_input_grad(bool on) override {
    Base::set_needs_input_grad(on);
    body_.set_needs_input_grad(on);
  }

  // The ids, in the parameter store, of the tensors initialize() redraws or sets.
  const std::vector<Index>& kaiming_ids() const { return kaiming_; }
  const std::vector<Index>& ones_ids() const { return ones_; }
  const std::vector<Index>& zeros_ids() const { return zeros_; }

 protected:
  using ConvOptions = typename Conv2d<T, B>::Options;

  // Appends a Conv2d named `name` to seq; initialize() redraws its weight (kaiming) and, if zero_bias, zeroes
  // its bias.
  Conv2d<T, B>& add_conv(Sequential<T, B>& seq, const std::string& name, const ConvOptions& o, bool zero_bias) {
    auto& conv = seq.template emplace<Conv2d<T, B>>(state_, name, o);
    kaiming_.push_back(conv.weight_id());
    if (zero_bias && conv.bias_id() >= 0) zeros_.push_back(conv.bias_id());
    return conv;
  }
  // Appends a normalisation slot of `kind` for C channels; initialize() sets its affine weight to 1 and bias to
  // 0 when reset_norms.
  void add_norm(Sequential<T, B>& seq, const std::string& name, NormKind kind, Index channels, bool reset_norms) {
    NormSlot<T, B> slot = make_norm_layer(state_, name, kind, channels);
    seq.add(std::move(slot.module));
    if (reset_norms && slot.weight_id >= 0) ones_.push_back(slot.weight_id);
    if (reset_norms && slot.bias_id >= 0) zeros_.push_back(slot.bias_id);
  }

  // Called by the subclasses' constructors once the body is complete: E from the first crop's size S0, which
  // also checks that such an input passes through every layer.
  void finish(Index img_size) {
    DINO_CHECK(img_size > 0, "encoder '", arch_, "': the image size must be positive, got ", img_size);
    const Shape out = body_.output_shape({1, 3, img_size, img_size});
    DINO_CHECK(out.rank() == 2, "encoder '", arch_, "' gives ", out.str(), " instead of [N, E]");
    embed_dim_ = out[1];
  }

  std::string arch_;
  Sequential<T, B> body_;
  ModelState<T, B>& state_;
  Index embed_dim_ = 0;
  std::vector<Index> kaiming_, ones_, zeros_;
};

}  // namespace dino

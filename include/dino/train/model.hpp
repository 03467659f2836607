// DinoModel: one network of the pair (the testbed's DINOModel, spec §6.1): an encoder applied to every crop
// batch separately (so BatchNorm statistics are per crop), the embeddings stacked [C, B, E], and the DINO
// head on the stack. Its state is named as the PyTorch module's state_dict ("enc.*", "head.*").
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "dino/core/module.hpp"
#include "dino/encoders/registry.hpp"
#include "dino/head/dino_head.hpp"
#include "dino/train/config.hpp"

namespace dino {

struct ModelOptions {
  EncoderOptions enc;
  HeadOptions head;  // dimensions <= 0 are replaced by the embedding size when the model is built
};

// The model part of a configuration (spec §1.3: out_dim, hid_dims and l2bot_dim <= 0 become E).
inline ModelOptions model_options(const Config& c, Index img_size) {
  ModelOptions o;
  o.enc.name = c.enc;
  o.enc.img_size = img_size;
  o.enc.tiny_input = c.tiny_input;
  o.enc.norm_layer = c.enc_norm_layer.value_or("");
  o.head.hid_dims.assign(c.hid_dims.begin(), c.hid_dims.end());
  o.head.mlp_bn = c.mlp_bn;
  o.head.act = c.mlp_act;
  o.head.l2bot_dim = c.l2bot_dim;
  o.head.l2bot_cfg = c.l2bot_cfg;
  o.head.out_dim = c.out_dim;
  return o;
}

// Throws, naming the culprit, when the model of c cannot be built for its crops: an encoder that needs larger
// images (VGG on 28x28), a norm override without a norm to replace, or crop sizes that the encoder embeds in
// different sizes (VGG's embedding depends on the input size) while the head takes one. Only shapes are
// registered, nothing is allocated: the command runs this before it writes anything.
template <class T, class B>
void check_model_config(const Config& c, const std::vector<Index>& crop_sizes) {
  Index first = 0, first_size = 0;
  for (const Index size : crop_sizes) {
    ModelState<T, B> shapes_only;
    EncoderOptions o = model_options(c, size).enc;
    o.prefix = "enc";
    const Index e = make_encoder<T, B>(shapes_only, o)->embed_dim();
    DINO_CHECK(first == 0 || e == first, "--enc ", c.enc, " embeds the ", first_size, "x", first_size, " crops of --mc ",
               c.mc, " in ", first, " dimensions but its ", size, "x", size, " crops in ", e,
               ": the head takes one embedding size");
    if (first == 0) {
      first = e;
      first_size = size;
    }
  }
}

// What one forward pass over a list of crops keeps for its backward pass; reused from step to step.
template <class T, class B>
struct ModelPass {
  std::vector<Tensor<T, B>> embed;   // per crop: [B, E]
  std::deque<Saved<T, B>> enc_saved;  // a deque: Saved is not nothrow-movable
  Tensor<T, B> embeddings;           // [C, B, E]
  Tensor<T, B> projections, logits;  // [C, B, K]
  Saved<T, B> head_saved;
  Tensor<T, B> dembeddings, dembed, dcrop;
};

template <class T, class B>
class DinoModel {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  using TensorT = Tensor<T, B>;

  explicit DinoModel(ModelOptions o) {
    o.enc.prefix = "enc";
    enc_ = make_encoder<T, B>(state_, o.enc);
    const Index e = enc_->embed_dim();
    o.head.embed_dim = e;
    for (auto& d : o.head.hid_dims)
      if (d <= 0) d = e;
    if (o.head.l2bot_dim <= 0) o.head.l2bot_dim = e;
    if (o.head.out_dim <= 0) o.head.out_dim = e;
    head_ = std::make_unique<DinoHead<T, B>>(state_, "head", o.head);
    state_.finalize();
    // The encoder's first layer never needs the gradient of the images.
    enc_->set_needs_input_grad(false);
    options_ = o;
  }

  ModelState<T, B>& state() { return state_; }
  const ModelState<T, B>& state() const { return state_; }
  Encoder<T, B>& encoder() { return *enc_; }
  DinoHead<T, B>& head() { return *head_; }
  const ModelOptions& options() const { return options_; }
  Index embed_dim() const { return enc_->embed_dim(); }
  Index out_dim() const { return head_->out_dim(); }

  void train(bool on = true) {
    enc_->train(on);
    head_->train(on);
  }
  // PyTorch's construction-time initialisation of every layer (the state a freshly built module has).
  void reset_parameters(Generator& gen) {
    enc_->reset_parameters(gen);
    head_->reset_parameters(gen);
  }
  // The testbed's model.reset_parameters(gen) (spec §5): the encoder's rule, then the head's.
  void initialize(Generator& gen, HeadInit head_init) {
    enc_->initialize(gen);
    head_->initialize(gen, head_init);
  }

  // crops: C tensors [B, 3, S, S] (equal B). Fills pass.embeddings [C, B, E], pass.projections and
  // pass.logits [C, B, K]; updates the head's centre after use when update_cent is set (spec §4.3).
  void forward(Ctx<B>& ctx, const std::vector<const TensorT*>& crops, bool update_cent, ModelPass<T, B>& pass) {
    DINO_CHECK(!crops.empty(), "DinoModel: no crops to forward");
    const Index c = static_cast<Index>(crops.size());
    const Index b = crops[0]->size(0);
    const Index e = embed_dim();
    if (pass.embed.size() < crops.size()) {
      pass.embed.resize(crops.size());
      pass.enc_saved.resize(crops.size());
    }
    pass.embeddings.resize({c, b, e});
    for (std::size_t i = 0; i < crops.size(); ++i) {
      DINO_CHECK(crops[i]->rank() == 4 && crops[i]->size(0) == b, "crop ", i, " has shape ", crops[i]->shape().str(),
                 "; expected [", b, ", 3, S, S] like crop 0");
      enc_->forward(ctx, *crops[i], pass.embed[i], pass.enc_saved[i]);
      B::copy(pass.embeddings.data() + static_cast<Index>(i) * b * e, pass.embed[i].data(), b * e);
    }
    head_->forward(ctx, pass.embeddings, pass.projections, pass.logits, pass.head_saved, update_cent);
  }

  // dlogits [C, B, K] of the last forward: adds into the parameter gradients.
  void backward(Ctx<B>& ctx, const TensorT& dlogits, ModelPass<T, B>& pass) {
    head_->backward(ctx, dlogits, pass.dembeddings, pass.head_saved);
    const Index c = pass.embeddings.size(0), b = pass.embeddings.size(1), e = pass.embeddings.size(2);
    pass.dembed.resize({b, e});
    for (Index i = 0; i < c; ++i) {
      B::copy(pass.dembed.data(), pass.dembeddings.data() + i * b * e, b * e);
      enc_->backward(ctx, pass.dembed, pass.dcrop, pass.enc_saved[static_cast<std::size_t>(i)]);
    }
  }

 private:
  ModelState<T, B> state_;
  std::unique_ptr<Encoder<T, B>> enc_;
  std::unique_ptr<DinoHead<T, B>> head_;
  ModelOptions options_;
};

}  // namespace dino

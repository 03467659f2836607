// ConvNet: the seed README's convnet_W_D[e] (spec 3.3, README-era layout; the torchref's ConvNetReadme):
// conv1 3x3 'same' -> ReLU -> block [MaxPool 2x2, (D - 1) x (conv 3x3 'same' -> norm -> ReLU), tail conv]
// -> AdaptiveAvgPool2d((2, 2)) -> flatten, E = 4 W.
#pragma once
#include <string>

#include "dino/encoders/encoder.hpp"
#include "dino/layers/activations.hpp"
#include "dino/layers/pooling.hpp"

namespace dino {

struct ConvNetOptions {
  Index width = 16;    // W: channels of every conv
  Index depth = 2;     // D: the stem plus D - 1 conv-norm-ReLU blocks
  bool tail = false;   // the 'e' variants: one more conv (no norm, no activation) after the blocks
  std::string norm_layer;  // the blocks' norm: "" = BatchNorm, else a name of norm_layer_names()
  Index img_size = 32;     // S0 (E does not depend on it; it only has to pass through)
};

template <class T, class B>
class ConvNet : public Encoder<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Encoder<T, B>;

 public:
  // Registers conv1.{weight,bias} and block.<i>.* under prefix, with i the index in the block sequence
  // (MaxPool at 0 when present, then conv, norm, ReLU triples, then the tail conv), as the testbed names them.
  ConvNet(ModelState<T, B>& state, const std::string& prefix, const ConvNetOptions& o, const std::string& arch = "")
      : Base(state, prefix, arch.empty() ? default_arch(o) : arch) {
    DINO_CHECK(o.width > 0, "encoder '", this->arch_, "': the width must be positive, got ", o.width);
    DINO_CHECK(o.depth >= 1, "encoder '", this->arch_, "': the depth must be at least 1, got ", o.depth);
    const NormKind norm = o.norm_layer.empty() ? NormKind::BatchNorm : parse_norm_layer(o.norm_layer);
    // Only conv weights are redrawn by the testbed: conv biases keep their construction-time values.
    const typename Base::ConvOptions conv{0, o.width, 3, 3, 1, 1, 0, 0, true, true};
    auto stem = conv;
    stem.in_channels = 3;
    Sequential<T, B>& body = this->body_;
    this->add_conv(body, this->child_name("conv1"), stem, false);
    body.template emplace<ReLU<T, B>>(this->child_name("relu1"));
    auto block = std::make_unique<Sequential<T, B>>(this->child_name("block"));
    if (o.depth > 1 || o.tail)
      block->template emplace<MaxPool2d<T, B>>(block->next_name(), typename MaxPool2d<T, B>::Options{2, 2, 0});
    auto inner = conv;
    inner.in_channels = o.width;
    for (Index d = 1; d < o.depth; ++d) {
      this->add_conv(*block, block->next_name(), inner, false);
      this->add_norm(*block, block->next_name(), norm, o.width, false);
      block->template emplace<ReLU<T, B>>(block->next_name());
    }
    if (o.tail) this->add_conv(*block, block->next_name(), inner, false);
    body.add(std::move(block));
    body.template emplace<AdaptiveAvgPool2d<T, B>>(this->child_name("avgpool"), 2, 2);
    body.template emplace<Flatten<T, B>>(this->child_name("flatten"));
    this->finish(o.img_size);
  }

  // "convnet_<W>_<D>[e]".
  static std::string default_arch(const ConvNetOptions& o) {
    return "convnet_" + std::to_string(o.width) + "_" + std::to_string(o.depth) + (o.tail ? "e" : "");
  }
};

}  // namespace dino

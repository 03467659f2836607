// ResNet with torchvision's BasicBlock (the testbed's models/resnet.py, a torchvision v0.14 copy; spec 3.4):
// resnet18/34 (4 stages from 64 planes) and the CIFAR resnet20/56 (3 stages from 16 planes, tiny stem), with
// projection shortcuts and AdaptiveAvgPool2d(1) -> flatten, under torchvision's state_dict names.
#pragma once
#include <string>
#include <vector>

#include "dino/encoders/encoder.hpp"
#include "dino/layers/activations.hpp"
#include "dino/layers/pooling.hpp"

namespace dino {

struct ResNetOptions {
  std::vector<Index> layers;              // BasicBlocks per stage (resnet18: 2, 2, 2, 2); stage k > 1 has stride 2
  Index stem_planes = 64;                 // channels of the stem and of stage 1; doubled at every stage
  bool tiny_input = false;                // stem conv 3x3 stride 1 and no max-pool (else 7x7 stride 2 + max-pool)
  std::string norm_layer;                 // every norm (stem, blocks, shortcuts): "" = BatchNorm
  Index img_size = 32;                    // S0 (E does not depend on it; it only has to pass through)
};

template <class T, class B>
class ResNet : public Encoder<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Encoder<T, B>;
  using ConvOptions = typename Base::ConvOptions;

 public:
  // Registers conv1.weight, bn1.*, layer<k>.<j>.{conv1,bn1,conv2,bn2}.* and layer<k>.<j>.downsample.{0,1}.*
  // under prefix, in torchvision's order. E = stem_planes * 2^(stages - 1).
  ResNet(ModelState<T, B>& state, const std::string& prefix, const ResNetOptions& o, const std::string& arch = "resnet")
      : Base(state, prefix, arch) {
    DINO_CHECK(!o.layers.empty(), "encoder '", arch, "' needs at least one stage");
    for (Index n : o.layers)
      DINO_CHECK(n >= 1, "encoder '", arch, "': every stage needs at least one block, got ", n);
    DINO_CHECK(o.stem_planes > 0, "encoder '", arch, "': the stem width must be positive, got ", o.stem_planes);
    const NormKind norm = o.norm_layer.empty() ? NormKind::BatchNorm : parse_norm_layer(o.norm_layer);
    Sequential<T, B>& body = this->body_;
    const ConvOptions stem = o.tiny_input ? ConvOptions{3, o.stem_planes, 3, 3, 1, 1, 1, 1, false, false}
                                          : ConvOptions{3, o.stem_planes, 7, 7, 2, 2, 3, 3, false, false};
    this->add_conv(body, this->child_name("conv1"), stem, false);
    this->add_norm(body, this->child_name("bn1"), norm, o.stem_planes, true);
    body.template emplace<ReLU<T, B>>(this->child_name("relu"));
    // With tiny_input the max-pool is an Identity without parameters: leaving it out changes no name.
    if (!o.tiny_input)
      body.template emplace<MaxPool2d<T, B>>(this->child_name("maxpool"), typename MaxPool2d<T, B>::Options{3, 2, 1});
    Index in = o.stem_planes, planes = o.stem_planes;
    for (std::size_t k = 0; k < o.layers.size(); ++k) {
      auto stage = std::make_unique<Sequential<T, B>>(this->child_name("layer" + std::to_string(k + 1)));
      for (Index j = 0; j < o.layers[k]; ++j) {
        const Index stride = k > 0 && j == 0 ? 2 : 1;
        add_basic_block(*stage, norm, in, planes, stride);
        in = planes;
      }
      body.add(std::move(stage));
      planes *= 2;
    }
    body.template emplace<AdaptiveAvgPool2d<T, B>>(this->child_name("avgpool"), 1, 1);
    body.template emplace<Flatten<T, B>>(this->child_name("flatten"));
    this->finish(o.img_size);
  }

 private:
  // torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the shortcut a strided 1x1
  // conv and a norm when the stride or the channel count changes ("option B", also for resnet20/56).
  void add_basic_block(Sequential<T, B>& stage, NormKind norm, Index in, Index planes, Index stride) {
    const std::string name = stage.next_name();
    auto main = std::make_unique<Sequential<T, B>>(name);
    this->add_conv(*main, name + ".conv1", ConvOptions{in, planes, 3, 3, stride, stride, 1, 1, false, false}, false);
    this->add_norm(*main, name + ".bn1", norm, planes, true);
    main->template emplace<ReLU<T, B>>(name + ".relu");
    this->add_conv(*main, name + ".conv2", ConvOptions{planes, planes, 3, 3, 1, 1, 1, 1, false, false}, false);
    this->add_norm(*main, name + ".bn2", norm, planes, true);
    std::unique_ptr<Sequential<T, B>> shortcut;
    if (stride != 1 || in != planes) {
      shortcut = std::make_unique<Sequential<T, B>>(name + ".downsample");
      const ConvOptions proj{in, planes, 1, 1, stride, stride, 0, 0, false, false};
      this->add_conv(*shortcut, shortcut->next_name(), proj, false);
      this->add_norm(*shortcut, shortcut->next_name(), norm, planes, true);
    }
    auto block = std::make_unique<Sequential<T, B>>(name);
    block->template emplace<Residual<T, B>>(name, std::move(main), std::move(shortcut));
    block->template emplace<ReLU<T, B>>(name + ".relu");
    stage.add(std::move(block));
  }
};

}  // namespace dino

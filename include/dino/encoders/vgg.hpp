// VGG feature extractors (the testbed's models/vgg.py, a torchvision v0.14 copy without avgpool and
// classifier; spec 3.5): configs A/B/D/E of vgg11/13/16/19, conv 3x3 p1 -> [norm] -> ReLU and 2x2 max-pools,
// flattened. E = 512 (S/32)^2 follows from the first crop's size S0 (spec A3).
#pragma once
#include <string>
#include <vector>

#include "dino/encoders/encoder.hpp"
#include "dino/layers/activations.hpp"
#include "dino/layers/pooling.hpp"

namespace dino {

struct VGGOptions {
  std::vector<Index> cfg;   // conv widths, 0 for a MaxPool2d(2, 2) ('M'), as torchvision's cfgs
  bool batch_norm = false;  // the _bn variants: BatchNorm2d after every conv
  std::string norm_layer;   // "" = batch_norm decides; else this norm after every conv (also for _bn)
  Index img_size = 32;      // S0: fixes E, and must survive every pooling
};

// torchvision's feature configs: 'A' (vgg11), 'B' (vgg13), 'D' (vgg16), 'E' (vgg19); 0 stands for 'M'.
inline std::vector<Index> vgg_config(char letter) {
  switch (letter) {
    case 'A': return {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    case 'B': return {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    case 'D': return {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
    case 'E': return {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0};
    default: fail("unknown VGG config '", letter, "' (choices: A, B, D, E)");
  }
}

template <class T, class B>
class VGG : public Encoder<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Encoder<T, B>;

 public:
  // Registers features.<i>.* under prefix with torchvision's indices: each conv, its norm (when there is one:
  // an Identity keeps its index without parameters) and ReLU, and each 'M', take one index.
  VGG(ModelState<T, B>& state, const std::string& prefix, const VGGOptions& o, const std::string& arch = "vgg")
      : Base(state, prefix, arch) {
    DINO_CHECK(!o.cfg.empty(), "encoder '", arch, "' needs a non-empty config");
    // Each 2x2 pooling floors the side; one that reaches 0 leaves nothing to embed (28x28 MNIST in vgg*).
    Index side = o.img_size, pools = 0;
    for (Index v : o.cfg)
      if (v == 0) {
        side /= 2;
        ++pools;
      }
    DINO_CHECK(o.img_size > 0 && side > 0, "encoder '", arch, "' needs images of at least ", Index(1) << pools, "x",
               Index(1) << pools, " (", pools, " 2x2 max-poolings), got ", o.img_size, "x", o.img_size);
    const bool has_norm = o.batch_norm || !o.norm_layer.empty();
    const NormKind norm = o.norm_layer.empty() ? NormKind::BatchNorm : parse_norm_layer(o.norm_layer);
    auto features = std::make_unique<Sequential<T, B>>(this->child_name("features"));
    Index in = 3;
    for (Index v : o.cfg) {
      DINO_CHECK(v >= 0, "encoder '", arch, "': negative width ", v, " in the config");
      if (v == 0) {
        features->template emplace<MaxPool2d<T, B>>(features->next_name(), typename MaxPool2d<T, B>::Options{2, 2, 0});
        continue;
      }
      // The testbed zeroes VGG's conv biases and resets its norms (1, 0).
      this->add_conv(*features, features->next_name(), typename Base::ConvOptions{in, v, 3, 3, 1, 1, 1, 1, false, true},
                     true);
      if (has_norm) this->add_norm(*features, features->next_name(), norm, v, true);
      features->template emplace<ReLU<T, B>>(features->next_name());
      in = v;
    }
    this->body_.add(std::move(features));
    this->body_.template emplace<Flatten<T, B>>(this->child_name("flatten"));
    this->finish(o.img_size);
  }
};

}  // namespace dino

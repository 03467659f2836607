// The encoder registry (safelix/dinopl:configuration.py get_encoder with the seed README's names, spec A3):
// --enc name -> encoder.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dino/encoders/convnet.hpp"
#include "dino/encoders/flatten.hpp"
#include "dino/encoders/names.hpp"
#include "dino/encoders/resnet.hpp"
#include "dino/encoders/vgg.hpp"

namespace dino {

// The encoder o.name describes, its parameters registered in state under o.prefix (state is then finalized
// by the caller, and the encoder's reset_parameters gives PyTorch's construction-time values). Throws for an
// unknown name (listing the choices), an unknown --enc_norm_layer, a norm override on Flatten, or an image
// size the encoder cannot take.
template <class T, class B>
std::unique_ptr<Encoder<T, B>> make_encoder(ModelState<T, B>& state, const EncoderOptions& o) {
  DINO_CHECK(o.img_size > 0, "encoder '", o.name, "': the image size must be positive, got ", o.img_size);
  if (!o.norm_layer.empty()) parse_norm_layer(o.norm_layer);  // a bad value is reported before the name
  std::string name = o.name;
  if (name == "ConvNet") name = "convnet_16_2";
  if (name == "ResNet") name = "resnet18";
  if (name == "VGG") name = "vgg11";
  bool known = false;
  for (const auto& n : encoder_names()) known = known || n == name;
  if (!known) {
    std::string choices;
    for (const auto& n : encoder_names()) choices += (choices.empty() ? "" : ", ") + n;
    fail("unknown encoder '", o.name, "' (choices: ", choices, ")");
  }
  if (name == "flatten" || name == "Flatten") {
    DINO_CHECK(o.norm_layer.empty(), "--enc_norm_layer ", o.norm_layer, " given, but encoder '", o.name,
               "' has no normalisation layer to replace");
    return std::make_unique<FlattenEncoder<T, B>>(state, o.prefix, o.img_size, o.name);
  }
  if (name.compare(0, 8, "convnet_") == 0) {
    // convnet_<W>_<D>[e], validated against the list above.
    ConvNetOptions c;
    const std::size_t sep = name.find('_', 8);
    c.width = std::stoll(name.substr(8, sep - 8));
    c.tail = name.back() == 'e';
    c.depth = std::stoll(name.substr(sep + 1, name.size() - sep - 1 - (c.tail ? 1 : 0)));
    c.norm_layer = o.norm_layer;
    c.img_size = o.img_size;
    return std::make_unique<ConvNet<T, B>>(state, o.prefix, c, o.name);
  }
  if (name.compare(0, 6, "resnet") == 0) {
    ResNetOptions r;
    r.norm_layer = o.norm_layer;
    r.img_size = o.img_size;
    r.tiny_input = o.tiny_input;
    r.layers = name == "resnet34" ? std::vector<Index>{3, 4, 6, 3} : std::vector<Index>{2, 2, 2, 2};
    if (name == "resnet20" || name == "resnet56") {
      const Index n = name == "resnet20" ? 3 : 9;
      r.layers = {n, n, n};
      r.stem_planes = 16;
      r.tiny_input = true;  // the CIFAR ResNets always take small images
    }
    return std::make_unique<ResNet<T, B>>(state, o.prefix, r, o.name);
  }
  // vgg<11|13|16|19>[_bn]
  VGGOptions v;
  const std::string depth = name.substr(3, 2);
  v.cfg = vgg_config(depth == "11" ? 'A' : depth == "13" ? 'B' : depth == "16" ? 'D' : 'E');
  v.batch_norm = name.size() > 5;
  v.norm_layer = o.norm_layer;
  v.img_size = o.img_size;
  return std::make_unique<VGG<T, B>>(state, o.prefix, v, o.name);
}

}  // namespace dino

// The --enc names (spec A3), apart from the encoders themselves: the configuration offers them as choices.
#pragma once
#include <string>
#include <vector>

namespace dino {

// Every accepted --enc value: convnet_{16,32}_{1..5}{,e}, ConvNet, resnet18/34/20/56, ResNet, vgg11 ...
// vgg19_bn, VGG, Flatten, flatten.
inline const std::vector<std::string>& encoder_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const char* w : {"16", "32"})
      for (int d = 1; d <= 5; ++d)
        for (const char* e : {"", "e"}) n.push_back(std::string("convnet_") + w + "_" + std::to_string(d) + e);
    n.push_back("ConvNet");
    for (const char* r : {"resnet18", "resnet34", "resnet20", "resnet56", "ResNet"}) n.push_back(r);
    for (const char* v : {"vgg11", "vgg13", "vgg16", "vgg19"}) {
      n.push_back(v);
      n.push_back(std::string(v) + "_bn");
    }
    n.push_back("VGG");
    n.push_back("Flatten");
    n.push_back("flatten");
    return n;
  }();
  return names;
}

}  // namespace dino

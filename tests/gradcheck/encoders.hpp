// Gradient checks of whole encoders on tiny instances (ConvNet, ResNet with both stems and with GroupNorm8,
// VGG with BatchNorm and with an override, Flatten): double central differences of the input and of every
// parameter, the float gradients, accumulation and interleaved crops. One body for every backend: the
// including file defines DINO_TEST_BACKEND.
#pragma once
#include <dino/encoders/registry.hpp>

#include "../support/gradcheck.hpp"

namespace dino::testing {

namespace encoder_test {

// An encoder of the registry with the given options; S is the scalar type of the state it fills.
template <class S, class B>
std::unique_ptr<Encoder<S, B>> by_name(ModelState<S, B>& state, const std::string& name, Index img_size,
                                       const std::string& norm = "") {
  EncoderOptions o;
  o.name = name;
  o.img_size = img_size;
  o.norm_layer = norm;
  return make_encoder(state, o);
}

}  // namespace encoder_test

TEST_CASE_TEMPLATE("encoders: ConvNet gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  SUBCASE("convnet_16_1e from the registry (stem, max-pool, tail conv)") {
    gradcheck<T>([](auto& s) { return encoder_test::by_name(s, "convnet_16_1e", 8); }, Shape{2, 3, 8, 8});
  }
  SUBCASE("width 4, depth 3 with a tail: conv-BatchNorm-ReLU blocks") {
    gradcheck<T>(
        [](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          ConvNetOptions o;
          o.width = 4;
          o.depth = 3;
          o.tail = true;
          o.img_size = 6;
          return std::make_unique<ConvNet<S, B>>(s, "enc", o);
        },
        Shape{2, 3, 6, 6});
  }
  SUBCASE("width 4, depth 2 with LayerNorm (GroupNorm(1, C)) blocks") {
    gradcheck<T>(
        [](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          ConvNetOptions o;
          o.width = 4;
          o.depth = 2;
          o.norm_layer = "LayerNorm";
          o.img_size = 6;
          return std::make_unique<ConvNet<S, B>>(s, "enc", o);
        },
        Shape{2, 3, 6, 6});
  }
}

TEST_CASE_TEMPLATE("encoders: ResNet gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  struct Case {
    const char* what;
    std::vector<Index> layers;
    Index planes;
    bool tiny;
    const char* norm;
    Shape in;
  };
  const Case cases[] = {
      {"tiny stem, two stages (identity and projection shortcuts), BatchNorm", {2, 1}, 4, true, "", {2, 3, 6, 6}},
      {"7x7 stride-2 stem and 3x3 max-pool, one stage, BatchNorm", {1}, 4, false, "", {2, 3, 10, 10}},
      {"tiny stem, two stages, GroupNorm8", {1, 1}, 8, true, "GroupNorm8", {2, 3, 5, 5}},
      {"tiny stem, two stages, Identity norms", {1, 1}, 4, true, "Identity", {2, 3, 5, 5}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    gradcheck<T>(
        [&](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          ResNetOptions o;
          o.layers = c.layers;
          o.stem_planes = c.planes;
          o.tiny_input = c.tiny;
          o.norm_layer = c.norm;
          o.img_size = c.in[2];
          return std::make_unique<ResNet<S, B>>(s, "enc", o);
        },
        c.in);
  }
}

TEST_CASE_TEMPLATE("encoders: VGG and Flatten gradients", T, float, double) {
  using B = DINO_TEST_BACKEND;
  SUBCASE("conv-BatchNorm-ReLU and max-pools (a vgg*_bn in miniature), 2x2 output flattened") {
    gradcheck<T>(
        [](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          VGGOptions o;
          o.cfg = {4, 0, 6, 6, 0};
          o.batch_norm = true;
          o.img_size = 8;
          return std::make_unique<VGG<S, B>>(s, "enc", o);
        },
        Shape{2, 3, 8, 8});
  }
  SUBCASE("plain VGG with an InstanceNorm override") {
    gradcheck<T>(
        [](auto& s) {
          using S = typename std::decay_t<decltype(s)>::scalar;
          VGGOptions o;
          o.cfg = {4, 0, 4, 0};
          o.norm_layer = "InstanceNorm";
          o.img_size = 6;
          return std::make_unique<VGG<S, B>>(s, "enc", o);
        },
        Shape{2, 3, 6, 6});
  }
  SUBCASE("flatten") {
    gradcheck<T>([](auto& s) { return encoder_test::by_name(s, "flatten", 4); }, Shape{2, 3, 4, 4});
  }
}

}  // namespace dino::testing

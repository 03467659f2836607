// Unit tests of the encoders (include/dino/encoders): the registry's names, parameter counts and embedding
// sizes against torch, output shapes for 28x28 and 32x32 inputs, the errors, the construction-time init and
// the testbed's initialize() (kaiming statistics, norm constants, what stays untouched), and mode switches.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <dino/cpu.hpp>
#include <dino/encoders/registry.hpp>
#include <map>
#include <string>
#include <vector>

#include "../support/errors.hpp"

using namespace dino;

namespace {

using B = Cpu;

template <class T>
std::unique_ptr<Encoder<T, B>> build(ModelState<T, B>& st, const std::string& name, Index img_size,
                                     const std::string& norm = "", bool tiny = false) {
  EncoderOptions o;
  o.name = name;
  o.img_size = img_size;
  o.norm_layer = norm;
  o.tiny_input = tiny;
  return make_encoder(st, o);
}

using testing::contains;
using testing::error_of;

template <class T>
std::vector<T> entry_values(ModelState<T, B>& st, const std::string& name) {
  const Index id = st.params.find(name);
  REQUIRE_MESSAGE(id >= 0, "no parameter ", name);
  const Entry& e = st.params.entry(id);
  const auto all = st.params.values().to_host();
  return std::vector<T>(all.begin() + e.offset, all.begin() + e.offset + e.shape.numel());
}

}  // namespace

TEST_CASE("encoders: the registry's names") {
  const auto& names = encoder_names();
  CHECK(names.size() == 37);
  for (const char* n : {"convnet_16_1", "convnet_16_1e", "convnet_16_2", "convnet_16_2e", "convnet_32_1",
                        "convnet_32_1e", "convnet_32_2", "convnet_32_2e", "convnet_32_5e", "ConvNet", "resnet18",
                        "resnet34", "resnet20", "resnet56", "ResNet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
                        "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "VGG", "Flatten", "flatten"})
    CHECK_MESSAGE(std::count(names.begin(), names.end(), n) == 1, n);
  const std::vector<std::string> norms{"BatchNorm", "InstanceNorm", "GroupNorm8", "LayerNorm", "Identity"};
  CHECK(norm_layer_names() == norms);
}

TEST_CASE("encoders: parameter counts and embedding sizes match torch") {
  // Counts printed by tests/parity/make_encoder_fixtures.py from the torch modules (torchvision 0.14's
  // BasicBlock and VGG make_layers; torchvision.models.resnet18() with fc = Identity has 11,176,512).
  const std::map<std::string, Index> counts{
      {"convnet_16_1", 448},         {"convnet_16_1e", 2768},       {"convnet_16_2", 2800},
      {"convnet_16_2e", 5120},       {"convnet_16_3", 5152},        {"convnet_16_3e", 7472},
      {"convnet_16_4", 7504},        {"convnet_16_4e", 9824},       {"convnet_16_5", 9856},
      {"convnet_16_5e", 12176},      {"convnet_32_1", 896},         {"convnet_32_1e", 10144},
      {"convnet_32_2", 10208},       {"convnet_32_2e", 19456},      {"convnet_32_3", 19520},
      {"convnet_32_3e", 28768},      {"convnet_32_4", 28832},       {"convnet_32_4e", 38080},
      {"convnet_32_5", 38144},       {"convnet_32_5e", 47392},      {"ConvNet", 2800},
      {"resnet18", 11176512},        {"resnet34", 21284672},        {"resnet20", 271824},
      {"resnet56", 855120},          {"ResNet", 11176512},          {"vgg11", 9220480},
      {"vgg11_bn", 9225984},         {"vgg13", 9404992},            {"vgg13_bn", 9410880},
      {"vgg16", 14714688},           {"vgg16_bn", 14723136},        {"vgg19", 20024384},
      {"vgg19_bn", 20035392},        {"VGG", 9220480},              {"Flatten", 0},
      {"flatten", 0}};
  REQUIRE(counts.size() == encoder_names().size());
  for (const auto& name : encoder_names()) {
    CAPTURE(name);
    ModelState<float, B> st;
    auto enc = build(st, name, 32);  // nothing is allocated before finalize()
    CHECK(st.params.numel() == counts.at(name));
    const Index e = name.compare(0, 10, "convnet_16") == 0 || name == "ConvNet"   ? 64
                    : name.compare(0, 10, "convnet_32") == 0                     ? 128
                    : name == "resnet20" || name == "resnet56"                   ? 64
                    : name.compare(0, 6, "resnet") == 0 || name == "ResNet"      ? 512
                    : name == "flatten" || name == "Flatten"                     ? 3 * 32 * 32
                                                                                 : 512;
    CHECK(enc->embed_dim() == e);
    CHECK(enc->arch() == name);
  }
  // With overrides and tiny_input (the same script).
  struct Override {
    const char* name;
    const char* norm;
    bool tiny;
    Index count;
  };
  const Override overrides[] = {{"resnet18", "", true, 11168832},         {"resnet20", "GroupNorm8", false, 271824},
                                {"resnet18", "Identity", false, 11166912}, {"vgg11", "BatchNorm", false, 9225984},
                                {"vgg11_bn", "LayerNorm", false, 9225984}, {"convnet_32_5e", "InstanceNorm", false, 47392}};
  for (const Override& o : overrides) {
    CAPTURE(o.name);
    CAPTURE(o.norm);
    ModelState<float, B> st;
    build(st, o.name, 32, o.norm, o.tiny);
    CHECK(st.params.numel() == o.count);
  }
  // GroupNorm and Identity have no running statistics; an Identity norm leaves its Sequential index empty.
  ModelState<float, B> gn;
  build(gn, "resnet20", 32, "GroupNorm8");
  CHECK(gn.buffers.count() == 0);
  CHECK(gn.counters.empty());
  ModelState<float, B> id;
  build(id, "vgg11", 32, "Identity");
  CHECK(id.params.find("enc.features.0.weight") >= 0);
  CHECK(id.params.find("enc.features.3.weight") == -1);  // 0 conv, 1 Identity, 2 ReLU, 3 MaxPool
  CHECK(id.params.find("enc.features.4.weight") >= 0);
}

TEST_CASE("encoders: output shapes for 28x28 and 32x32 inputs") {
  for (const auto& name : encoder_names())
    for (Index s : {Index(28), Index(32)}) {
      CAPTURE(name);
      CAPTURE(s);
      ModelState<float, B> st;
      if (name.compare(0, 3, "vgg") == 0 || name == "VGG") {
        // Five 2x2 poolings need 32x32 (spec A3).
        if (s == 28) {
          CHECK(contains(error_of([&] { build(st, name, s); }), "at least 32x32"));
          continue;
        }
      }
      auto enc = build(st, name, s);
      CHECK(enc->output_shape({5, 3, s, s}) == Shape{5, enc->embed_dim()});
    }
  // E follows the input size where the testbed's code would not: VGG 512 (S/32)^2, Flatten 3 S^2.
  ModelState<float, B> a, b, c;
  CHECK(build(a, "vgg11", 64)->embed_dim() == 2048);
  CHECK(build(b, "vgg16_bn", 48)->embed_dim() == 512);
  CHECK(build(c, "flatten", 28)->embed_dim() == 3 * 28 * 28);
}

TEST_CASE("encoders: forward runs and gives [N, E] (small encoders)") {
  struct Run {
    const char* name;
    Index size;
    bool tiny;
  };
  for (const Run& r : {Run{"convnet_16_1", 28, false}, Run{"convnet_32_2e", 28, false}, Run{"resnet20", 32, false},
                       Run{"resnet18", 32, false}, Run{"resnet18", 16, true}, Run{"flatten", 28, false},
                       Run{"vgg11", 32, false}}) {
    CAPTURE(r.name);
    ModelState<float, B> st;
    auto enc = build(st, r.name, r.size, "", r.tiny);
    st.finalize();
    Generator gen(3);
    enc->reset_parameters(gen);
    if (st.params.numel() < 1000000) enc->initialize(gen);  // millions of normal draws cost more than the forward
    const Shape in{2, 3, r.size, r.size};
    auto x = Tensor<float, B>::from_host(in, gen.normal_vector<float>(static_cast<std::size_t>(in.numel()), 0, 1));
    Ctx<B> ctx;
    NoGrad<Ctx<B>> ng(ctx);
    Tensor<float, B> y;
    Saved<float, B> saved;
    enc->forward(ctx, x, y, saved);
    CHECK(y.shape() == Shape{2, enc->embed_dim()});
    const auto h = y.to_host();
    CHECK(std::all_of(h.begin(), h.end(), [](float v) { return std::isfinite(v); }));
    // The two images differ, so do their embeddings (the batch is not mixed up or dropped).
    CHECK(!std::equal(h.begin(), h.begin() + enc->embed_dim(), h.begin() + enc->embed_dim()));
  }
}

TEST_CASE("encoders: errors name the culprit") {
  ModelState<float, B> st;
  const std::string unknown = error_of([&] { build(st, "resnet19", 32); });
  CHECK(contains(unknown, "unknown encoder 'resnet19'"));
  CHECK(contains(unknown, "convnet_16_1e"));
  CHECK(contains(unknown, "vgg19_bn"));
  CHECK(contains(unknown, "Flatten"));
  CHECK(contains(error_of([&] { build(st, "convnet_64_2", 32); }), "unknown encoder"));
  CHECK(contains(error_of([&] { build(st, "vgg11", 28); }), "'vgg11' needs images of at least 32x32"));
  CHECK(contains(error_of([&] { build(st, "vgg13_bn", 31); }), "at least 32x32"));
  CHECK(contains(error_of([&] { build(st, "Flatten", 28, "BatchNorm"); }), "no normalisation layer"));
  CHECK(contains(error_of([&] { build(st, "flatten", 28, "Identity"); }), "no normalisation layer"));
  const std::string bad_norm = error_of([&] { build(st, "resnet20", 32, "BatchNorm2d"); });
  CHECK(contains(bad_norm, "unknown --enc_norm_layer 'BatchNorm2d'"));
  CHECK(contains(bad_norm, "GroupNorm8"));
  CHECK(contains(error_of([&] { build(st, "resnet20", 0); }), "image size must be positive"));
  // GroupNorm8 means groups of 8 channels: a width that is not a multiple of 8 is refused, naming the layer.
  ModelState<float, B> gn;
  ResNetOptions r;
  r.layers = {1};
  r.stem_planes = 12;
  r.norm_layer = "GroupNorm8";
  const std::string not8 = error_of([&] { ResNet<float, B>(gn, "enc", r); });
  CHECK(contains(not8, "GroupNorm8 at 'enc.bn1'"));
  CHECK(contains(not8, "divisible by 8, got 12"));
  ModelState<float, B> gc;
  ConvNetOptions c;
  c.width = 4;
  c.norm_layer = "GroupNorm8";
  CHECK(contains(error_of([&] { ConvNet<float, B>(gc, "enc", c); }), "divisible by 8, got 4"));
  // Inputs that do not fit: wrong channel count; another crop size where E depends on it.
  ModelState<float, B> s1, s2;
  auto conv = build(s1, "convnet_16_1", 28);
  CHECK(contains(error_of([&] { conv->output_shape({2, 1, 28, 28}); }), "expects images [N, 3, H, W]"));
  CHECK(conv->output_shape({2, 3, 12, 12}) == Shape{2, 64});  // adaptive pooling takes any size
  auto vgg = build(s2, "vgg11", 32);
  CHECK(contains(error_of([&] { vgg->output_shape({2, 3, 64, 64}); }), "embedding size is 512"));
}

TEST_CASE("encoders: construction-time init and the testbed's initialize") {
  SUBCASE("resnet20: kaiming conv weights, norms 1/0, running statistics untouched") {
    ModelState<double, B> st;
    auto enc = build(st, "resnet20", 32);
    st.finalize();
    Generator gen(11);
    enc->reset_parameters(gen);
    // Construction: conv weights U(+-1/sqrt(fan_in)); BatchNorm weight 1, bias 0, running 0/1, counter 0.
    const auto w = entry_values(st, "enc.layer2.0.conv1.weight");  // fan_in 16 * 9
    const double bound = 1 / std::sqrt(16.0 * 9);
    CHECK(*std::max_element(w.begin(), w.end()) <= bound);
    CHECK(*std::min_element(w.begin(), w.end()) >= -bound);
    CHECK(*std::max_element(w.begin(), w.end()) > 0.9 * bound);
    for (double v : entry_values(st, "enc.layer3.2.bn2.weight")) CHECK(v == 1.0);
    for (double v : st.buffers.values().to_host()) CHECK((v == 0.0 || v == 1.0));
    // Move every norm and buffer away from its constant, then initialize.
    for (Index id = 0; id < st.params.count(); ++id)
      if (st.params.entry(id).shape.rank() == 1) init::constant(st.params, id, 0.5);
    st.buffers.values().fill(0.25);
    for (auto& c : st.counters) c.second = 7;
    Generator gen2(12);
    enc->initialize(gen2);
    CHECK(enc->kaiming_ids().size() == 21);  // the stem, 9 blocks x 2 and the downsample convs of stages 2, 3
    for (const auto& e : st.params.entries()) {
      CAPTURE(e.name);
      const auto v = entry_values(st, e.name);
      if (e.shape.rank() == 4) {
        // kaiming_normal(fan_out, relu): std sqrt(2 / (C_out k^2)); the estimate's relative error is about
        // 1/sqrt(2 n), at most 6% for the smallest tensor (the 16x3x3x3 stem: 432 values), 4 sigma.
        double sum = 0, sq = 0;
        for (double x : v) sum += x, sq += x * x;
        const double n = static_cast<double>(v.size()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
        const double expect = std::sqrt(2.0 / static_cast<double>(e.shape[0] * e.shape[2] * e.shape[3]));
        CHECK(std::abs(sd / expect - 1) < 4 / std::sqrt(2 * n));
        CHECK(std::abs(mean) < 4 * expect / std::sqrt(n));
      } else {
        const bool is_weight = contains(e.name, ".weight");
        for (double x : v) CHECK(x == (is_weight ? 1.0 : 0.0));
      }
    }
    for (double v : st.buffers.values().to_host()) CHECK(v == 0.25);
    for (const auto& c : st.counters) CHECK(c.second == 7);
    // The same generator state gives the same draws (a pure function of the seed).
    const auto first = st.params.values().to_host();
    Generator gen3(12);
    enc->initialize(gen3);
    CHECK(st.params.values().to_host() == first);
  }
  SUBCASE("convnet_16_2e: only conv weights are redrawn; biases and norms keep their values") {
    ModelState<double, B> st;
    auto enc = build(st, "convnet_16_2e", 28);
    st.finalize();
    Generator gen(5);
    enc->reset_parameters(gen);
    const auto b1 = entry_values(st, "enc.conv1.bias");
    const auto b2 = entry_values(st, "enc.block.1.bias");
    const double bound = 1 / std::sqrt(3.0 * 9);  // conv1's construction bound
    for (double v : b1) CHECK(std::abs(v) <= bound);
    init::constant(st.params, st.params.find("enc.block.2.weight"), 0.5);
    const auto w_before = entry_values(st, "enc.block.4.weight");
    Generator gen2(6);
    enc->initialize(gen2);
    CHECK(enc->kaiming_ids().size() == 3);
    CHECK(entry_values(st, "enc.conv1.bias") == b1);
    CHECK(entry_values(st, "enc.block.1.bias") == b2);
    for (double v : entry_values(st, "enc.block.2.weight")) CHECK(v == 0.5);
    const auto w = entry_values(st, "enc.block.4.weight");  // the tail conv [16, 16, 3, 3]
    CHECK(w != w_before);
    double sq = 0;
    for (double x : w) sq += x * x;
    const double expect = std::sqrt(2.0 / (16 * 9));
    CHECK(std::abs(std::sqrt(sq / static_cast<double>(w.size())) / expect - 1) < 4 / std::sqrt(2.0 * w.size()));
  }
  SUBCASE("VGG: conv biases zeroed, norms (here GroupNorm) 1/0") {
    ModelState<double, B> st;
    VGGOptions o;
    o.cfg = {8, 0, 16, 0};
    o.norm_layer = "GroupNorm8";
    o.img_size = 8;
    VGG<double, B> enc(st, "enc", o);
    CHECK(enc.embed_dim() == 16 * 2 * 2);
    st.finalize();
    Generator gen(1);
    enc.reset_parameters(gen);
    st.params.values().fill(0.75);
    enc.initialize(gen);
    for (const char* n : {"enc.features.0.bias", "enc.features.1.bias", "enc.features.4.bias", "enc.features.5.bias"})
      for (double v : entry_values(st, n)) CHECK(v == 0.0);
    for (const char* n : {"enc.features.1.weight", "enc.features.5.weight"})
      for (double v : entry_values(st, n)) CHECK(v == 1.0);
    for (const char* n : {"enc.features.0.weight", "enc.features.4.weight"})
      for (double v : entry_values(st, n)) CHECK(v != 0.75);
  }
  SUBCASE("flatten: nothing to initialize") {
    ModelState<double, B> st;
    auto enc = build(st, "Flatten", 8);
    st.finalize();
    Generator gen(1);
    enc->initialize(gen);
    CHECK(st.params.numel() == 0);
    CHECK(enc->embed_dim() == 192);
  }
}

TEST_CASE("encoders: eval mode and the input gradient switch reach every layer") {
  ModelState<double, B> st;
  auto enc = build(st, "resnet20", 8);
  st.finalize();
  Generator gen(2);
  enc->reset_parameters(gen);
  const Shape in{2, 3, 8, 8};
  auto x = Tensor<double, B>::from_host(in, gen.normal_vector<double>(static_cast<std::size_t>(in.numel()), 0, 1));
  Ctx<B> ctx;
  Tensor<double, B> y, dx;
  Saved<double, B> saved;
  enc->eval();
  enc->forward(ctx, x, y, saved);
  for (const auto& c : st.counters) CHECK(c.second == 0);  // no BatchNorm ran in train mode
  const auto buffers = st.buffers.values().to_host();
  for (const auto& e : st.buffers.entries())
    for (Index i = 0; i < e.shape.numel(); ++i)
      CHECK(buffers[static_cast<std::size_t>(e.offset + i)] == (contains(e.name, "running_var") ? 1.0 : 0.0));
  enc->train();
  enc->forward(ctx, x, y, saved);
  for (const auto& c : st.counters) CHECK(c.second == 1);
  // Without the input gradient, backward fills the parameter gradients and leaves dx alone.
  enc->set_needs_input_grad(false);
  auto dy = Tensor<double, B>::from_host(y.shape(), std::vector<double>(static_cast<std::size_t>(y.numel()), 1.0));
  st.params.zero_grad();
  dx.resize({1});
  dx.fill(42.0);
  enc->backward(ctx, dy, dx, saved);
  CHECK(dx.shape() == Shape{1});
  CHECK(dx.to_host() == std::vector<double>{42.0});
  const auto g = st.params.grads().to_host();
  CHECK(std::any_of(g.begin(), g.end(), [](double v) { return v != 0.0; }));
}

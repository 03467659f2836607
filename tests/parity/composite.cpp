// Parity with PyTorch of composed modules: a head-like MLP (Linear -> BatchNorm1d -> GELU -> Linear -> fn,
// torch.nn.Sequential names "0".."4") and torchvision's BasicBlock with a projection shortcut, built from
// Residual + Sequential + ReLU under torchvision's names (conv1, bn1, conv2, bn2, downsample.0/1).
#include "parity.hpp"

namespace dino::parity {
namespace {

const Kinds kComposite{"MLP", "BasicBlock"};

template <class T>
std::unique_ptr<Module<T, B>> make_mlp(ModelState<T, B>& st, const Case& c) {
  const Index in = opt_index(c, "in"), hidden = opt_index(c, "hidden"), out = opt_index(c, "out");
  auto seq = std::make_unique<Sequential<T, B>>("");
  seq->template emplace<Linear<T, B>>(st, seq->next_name(), typename Linear<T, B>::Options{in, hidden, true, false});
  seq->template emplace<BatchNorm1d<T, B>>(st, seq->next_name(), typename BatchNorm<T, B>::Options{hidden});
  seq->template emplace<GELU<T, B>>(seq->next_name());
  seq->template emplace<Linear<T, B>>(st, seq->next_name(), typename Linear<T, B>::Options{hidden, out, true, false});
  seq->template emplace<L2Normalize<T, B>>(seq->next_name(), false);
  return seq;
}

template <class T>
std::unique_ptr<Module<T, B>> make_basic_block(ModelState<T, B>& st, const Case& c) {
  const Index in = opt_index(c, "in"), out = opt_index(c, "out"), stride = opt_index(c, "stride");
  using ConvOpt = typename Conv2d<T, B>::Options;
  const ConvOpt conv1{in, out, 3, 3, stride, stride, 1, 1, false, false};
  const ConvOpt conv2{out, out, 3, 3, 1, 1, 1, 1, false, false};
  const ConvOpt proj{in, out, 1, 1, stride, stride, 0, 0, false, false};
  const typename BatchNorm<T, B>::Options bn{out};
  auto main = std::make_unique<Sequential<T, B>>("");
  main->template emplace<Conv2d<T, B>>(st, "conv1", conv1);
  main->template emplace<BatchNorm2d<T, B>>(st, "bn1", bn);
  main->template emplace<ReLU<T, B>>("relu");
  main->template emplace<Conv2d<T, B>>(st, "conv2", conv2);
  main->template emplace<BatchNorm2d<T, B>>(st, "bn2", bn);
  auto shortcut = std::make_unique<Sequential<T, B>>("downsample");
  shortcut->template emplace<Conv2d<T, B>>(st, shortcut->next_name(), proj);
  shortcut->template emplace<BatchNorm2d<T, B>>(st, shortcut->next_name(), bn);
  auto block = std::make_unique<Sequential<T, B>>("");
  block->template emplace<Residual<T, B>>("", std::move(main), std::move(shortcut));
  block->template emplace<ReLU<T, B>>("relu");
  return block;
}

TEST_CASE_TEMPLATE("parity: MLP head and ResNet BasicBlock", T, float, double) {
  run_kinds<T>(kComposite, [](ModelState<T, B>& st, const Case& c) {
    return c.kind() == "MLP" ? make_mlp<T>(st, c) : make_basic_block<T>(st, c);
  });
}

}  // namespace
}  // namespace dino::parity

// Builds a two-layer MLP from the installed headers, runs forward and backward, prints the output sum.
#include <cstdio>
#include <dino/cpu.hpp>

int main() {
  using namespace dino;
  ModelState<float, Cpu> state;
  Sequential<float, Cpu> mlp("mlp");
  mlp.emplace<Linear<float, Cpu>>(state, mlp.next_name(), Linear<float, Cpu>::Options{4, 8, true, false});
  mlp.emplace<GELU<float, Cpu>>(mlp.next_name());
  mlp.emplace<Linear<float, Cpu>>(state, mlp.next_name(), Linear<float, Cpu>::Options{8, 2, true, false});
  state.finalize();
  Generator gen(1);
  mlp.reset_parameters(gen);
  Ctx<Cpu> ctx;
  auto x = Tensor<float, Cpu>::from_host({3, 4}, gen.normal_vector<float>(12, 0, 1));
  Tensor<float, Cpu> y, dx;
  Saved<float, Cpu> saved;
  mlp.forward(ctx, x, y, saved);
  Tensor<float, Cpu> dy(y.shape());
  dy.fill(1.0f);
  mlp.backward(ctx, dy, dx, saved);
  double sum = 0;
  for (float v : y.to_host()) sum += v;
  std::printf("consumer ok: %zu parameters, output sum %.6f\n", static_cast<std::size_t>(state.params.numel()), sum);
  return state.params.numel() == 4 * 8 + 8 + 8 * 2 + 2 ? 0 : 1;
}

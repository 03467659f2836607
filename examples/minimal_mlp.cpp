// The library in thirty lines: a Linear-GELU-Linear network fitted to y = sin(3x) by plain gradient descent.
// Parameters live in one flat store, so the update is a single axpy over all of them.
#include <cmath>
#include <cstdio>
#include <dino/cpu.hpp>

int main() {
  using namespace dino;
  using T = float;
  ModelState<T, Cpu> state;
  Sequential<T, Cpu> net("net");
  net.emplace<Linear<T, Cpu>>(state, net.next_name(), Linear<T, Cpu>::Options{1, 64, true, false});
  net.emplace<GELU<T, Cpu>>(net.next_name());
  net.emplace<Linear<T, Cpu>>(state, net.next_name(), Linear<T, Cpu>::Options{64, 1, true, false});
  net.set_needs_input_grad(false);
  state.finalize();
  Generator gen(0);
  net.reset_parameters(gen);

  const Index n = 256;
  std::vector<T> xs(n), ys(n);
  for (Index i = 0; i < n; ++i) {
    xs[i] = T(-1 + 2.0 * i / (n - 1));
    ys[i] = std::sin(3 * xs[i]);
  }
  auto x = Tensor<T, Cpu>::from_host({n, 1}, xs);
  Ctx<Cpu> ctx;
  Tensor<T, Cpu> y, dy({n, 1}), dx;
  Saved<T, Cpu> saved;
  for (int step = 0; step <= 2000; ++step) {
    net.forward(ctx, x, y, saved);
    const auto yh = y.to_host();
    std::vector<T> g(n);
    double mse = 0;
    for (Index i = 0; i < n; ++i) {
      mse += (yh[i] - ys[i]) * (yh[i] - ys[i]) / n;
      g[i] = 2 * (yh[i] - ys[i]) / n;  // d mse / d y
    }
    Cpu::copy_from_host(dy.data(), g.data(), n);
    state.params.zero_grad();
    net.backward(ctx, dy, dx, saved);
    Cpu::axpy(ctx, T(-0.2), state.params.grads().data(), state.params.values().data(), state.params.numel());
    if (step % 500 == 0) std::printf("step %4d  mse %.5f\n", step, mse);
  }
}

// The norm layer checks of tests/gradcheck/norm.hpp on the CPU backend, plus the CPU-only check that results
// do not depend on the OpenMP thread count.
#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "norm.hpp"

namespace dino::testing {

// Runs BatchNorm (train and eval) and GroupNorm forward and backward with the given thread count and returns
// every output, gradient and buffer, concatenated.
template <class T>
std::vector<T> norm_run_with_threads(int threads) {
  using B = Cpu;
  Ctx<B> ctx(threads);
  ModelState<T, B> state;
  BatchNorm2d<T, B> bn2(state, "bn2", {4});
  BatchNorm1d<T, B> bn1(state, "bn1", {300});
  GroupNorm<T, B> gn(state, "gn", {2, 4});
  state.finalize();
  Generator gen(77);
  bn2.reset_parameters(gen);
  bn1.reset_parameters(gen);
  gn.reset_parameters(gen);
  std::vector<T> out;
  auto append = [&](const Tensor<T, B>& t) {
    const auto h = t.to_host();
    out.insert(out.end(), h.begin(), h.end());
  };
  // Large enough for the parallel paths: [8, 4, 32, 33] and [64, 300] (channel blocks of the S = 1 case).
  for (const Shape& shape : {Shape{8, 4, 32, 33}, Shape{64, 300}}) {
    Module<T, B>* mods[] = {shape.rank() == 4 ? static_cast<Module<T, B>*>(&bn2) : &bn1, &gn};
    for (Module<T, B>* m : mods) {
      if (m == &gn && shape.rank() != 4) continue;
      for (bool train : {true, false}) {
        m->train(train);
        const auto xh = gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), 1.0, 2.0);
        const auto dyh = gen.normal_vector<T>(static_cast<std::size_t>(shape.numel()), 0.0, 1.0);
        auto x = Tensor<T, B>::from_host(shape, xh);
        auto dy = Tensor<T, B>::from_host(shape, dyh);
        Tensor<T, B> y, dx;
        Saved<T, B> saved;
        m->forward(ctx, x, y, saved);
        m->backward(ctx, dy, dx, saved);
        append(y);
        append(dx);
      }
    }
  }
  append(state.params.grads());
  append(state.buffers.values());
  return out;
}

TEST_CASE_TEMPLATE("BatchNorm and GroupNorm on the CPU: results independent of the thread count", T, float, double) {
  Ctx<Cpu> probe;
  const int saved_threads = probe.threads();
  const auto one = norm_run_with_threads<T>(1);
  const auto two = norm_run_with_threads<T>(2);
  const auto three = norm_run_with_threads<T>(3);
  probe.set_threads(saved_threads);
  REQUIRE(one.size() == two.size());
  CHECK(one == two);
  CHECK(one == three);
}

}  // namespace dino::testing

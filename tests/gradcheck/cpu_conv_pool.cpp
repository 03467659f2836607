#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "conv_pool.hpp"

namespace dino::testing {

// The CPU convolution splits the batch over threads; its results must not depend on how many there are.
TEST_CASE_TEMPLATE("Conv2d (CPU): results do not depend on the thread count", T, float, double) {
  using B = Cpu;
  ModelState<T, B> state;
  // Enough images for several chunks per thread, so that the chunks run in parallel with 2 and 3 threads.
  typename Conv2d<T, B>::Options o;
  conv_test::conv_options(16, 8, 3, 3, 1, 1, 1, 1, false, true)(o);
  Conv2d<T, B> conv(state, "conv", o);
  state.finalize();
  Generator gen(5);
  conv.reset_parameters(gen);
  const Shape in{40, 16, 32, 32};
  auto x = Tensor<T, B>::from_host(in, gen.normal_vector<T>(static_cast<std::size_t>(in.numel()), 0.0, 1.0));
  const Shape out = conv.output_shape(in);
  auto dy = Tensor<T, B>::from_host(out, gen.normal_vector<T>(static_cast<std::size_t>(out.numel()), 0.0, 1.0));
  Ctx<B> ctx;
  const int threads0 = ctx.threads();
  std::vector<T> ref_y, ref_dx, ref_g;
  for (int threads : {1, 2, 3}) {
    CAPTURE(threads);
    ctx.set_threads(threads);
    state.params.zero_grad();
    Tensor<T, B> y, dx;
    Saved<T, B> saved;
    conv.forward(ctx, x, y, saved);
    conv.backward(ctx, dy, dx, saved);
    if (ref_y.empty()) {
      ref_y = y.to_host();
      ref_dx = dx.to_host();
      ref_g = state.params.grads().to_host();
    } else {
      CHECK(y.to_host() == ref_y);
      CHECK(dx.to_host() == ref_dx);
      CHECK(state.params.grads().to_host() == ref_g);
    }
  }
  ctx.set_threads(threads0);
}

}  // namespace dino::testing

// Float Conv2d throughput on 2 threads: forward + backward (dx, dweight, dbias) of the ResNet-20 layers on
// 32x32 inputs and a ConvNet-32 layer on 28x28 crops; the peer of F.conv2d(...).backward() in
// bench/torch_ops.py. Names: BM_conv_fwd_bwd/<shape> and BM_conv_fwd/<shape> (forward alone, no-grad mode).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <dino/cpu.hpp>

namespace {

using dino::Index;
using Tensor = dino::Tensor<float, dino::Cpu>;

// Two threads, as bench/torch_ops.py, unless DINO_BENCH_THREADS says otherwise.
int bench_threads() {
  const char* env = std::getenv("DINO_BENCH_THREADS");
  return env && std::atoi(env) > 0 ? std::atoi(env) : 2;
}

struct ConvShape {
  const char* name;
  Index n, c_in, c_out, k, stride, pad, h;
  bool same, bias;
};

// The shapes of bench/torch_ops.py (same names and order).
const ConvShape kShapes[] = {
    {"r20_stem", 256, 3, 16, 3, 1, 1, 32, false, false},     {"r20_l1", 256, 16, 16, 3, 1, 1, 32, false, false},
    {"r20_l2_down", 256, 16, 32, 3, 2, 1, 32, false, false}, {"r20_l2", 256, 32, 32, 3, 1, 1, 16, false, false},
    {"r20_l3_down", 256, 32, 64, 3, 2, 1, 16, false, false}, {"r20_l3", 256, 64, 64, 3, 1, 1, 8, false, false},
    {"r20_l2_proj", 256, 16, 32, 1, 2, 0, 32, false, false}, {"r20_l3_proj", 256, 32, 64, 1, 2, 0, 16, false, false},
    {"c32_28", 64, 32, 32, 3, 1, 0, 28, true, true},
};

// Values in [-1, 1) from a fixed LCG, so every run convolves the same tensors.
std::vector<float> random_values(Index n, unsigned seed, float scale = 1.0f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  unsigned s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = scale * (static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.0f);
  }
  return v;
}

// One layer with its input and output gradient.
struct Setup {
  dino::ModelState<float, dino::Cpu> state;
  std::unique_ptr<dino::Conv2d<float, dino::Cpu>> conv;
  Tensor x, dy;
  double fwd_flops = 0;

  explicit Setup(const ConvShape& s) {
    dino::Conv2d<float, dino::Cpu>::Options o;
    o.in_channels = s.c_in;
    o.out_channels = s.c_out;
    o.kernel_h = o.kernel_w = s.k;
    o.stride_h = o.stride_w = s.stride;
    o.pad_h = o.pad_w = s.pad;
    o.same = s.same;
    o.bias = s.bias;
    conv = std::make_unique<dino::Conv2d<float, dino::Cpu>>(state, "conv", o);
    state.finalize();
    dino::Generator gen(1);
    conv->reset_parameters(gen);
    const dino::Shape in{s.n, s.c_in, s.h, s.h};
    const dino::Shape out = conv->output_shape(in);
    x = Tensor::from_host(in, random_values(in.numel(), 1));
    dy = Tensor::from_host(out, random_values(out.numel(), 2));
    fwd_flops = 2.0 * static_cast<double>(out.numel()) * static_cast<double>(s.c_in * s.k * s.k);
  }
};

void bm_conv_fwd_bwd(benchmark::State& state, dino::Ctx<dino::Cpu>* ctx, const ConvShape* shape) {
  Setup s(*shape);
  Tensor y, dx;
  dino::Saved<float, dino::Cpu> saved;
  for (auto _ : state) {
    s.conv->forward(*ctx, s.x, y, saved);
    s.conv->backward(*ctx, s.dy, dx, saved);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(3 * s.fwd_flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = ctx->threads();
}

void bm_conv_fwd(benchmark::State& state, dino::Ctx<dino::Cpu>* ctx, const ConvShape* shape) {
  Setup s(*shape);
  Tensor y;
  dino::Saved<float, dino::Cpu> saved;
  dino::NoGrad<dino::Ctx<dino::Cpu>> no_grad(*ctx);
  for (auto _ : state) {
    s.conv->forward(*ctx, s.x, y, saved);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(s.fwd_flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = ctx->threads();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dino::Ctx<dino::Cpu> ctx(bench_threads());
  for (const ConvShape& s : kShapes) {
    benchmark::RegisterBenchmark((std::string("BM_conv_fwd_bwd/") + s.name).c_str(), bm_conv_fwd_bwd, &ctx, &s)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const ConvShape& s : kShapes) {
    benchmark::RegisterBenchmark((std::string("BM_conv_fwd/") + s.name).c_str(), bm_conv_fwd, &ctx, &s)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

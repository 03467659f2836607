// Float GEMM throughput on 2 threads: dino::Cpu::gemm (the backend's GEMM), the Eigen kernel behind it, and
// a raw cblas_sgemm as the OpenBLAS reference; the peer of torch.matmul in bench/torch_ops.py.
// Names: BM_gemm/<impl>/<op>/<n>, impl dino|eigen|openblas, op nn (A*B), tn (A^T*B), nt (A*B^T).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <dino/cpu.hpp>

namespace {

using dino::Index;
using Mat = dino::Tensor<float, dino::Cpu>;

constexpr int kThreads = 2;

// Values in [-1, 1) from a fixed LCG, so every run multiplies the same matrices (no denormals).
Mat random_matrix(Index n, unsigned seed) {
  std::vector<float> v(static_cast<std::size_t>(n * n));
  unsigned s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  return Mat::from_host({n, n}, v);
}

enum class Impl { dino, eigen, openblas };

// C = op(A) * op(B), square n; with n x n matrices every leading dimension is n.
void run_gemm(dino::Ctx<dino::Cpu>& ctx, Impl impl, bool ta, bool tb, Index n, const float* a, const float* b,
              float* c) {
  switch (impl) {
    case Impl::dino:
      dino::Cpu::gemm(ctx, ta, tb, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
      break;
    case Impl::eigen:
      dino::cpu::BlasOps::eigen_gemm(ta, tb, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
      break;
    case Impl::openblas:
#ifdef DINO_USE_OPENBLAS
    {
      const auto N = static_cast<blasint>(n);
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, N, N, N, 1.0f, a,
                  N, b, N, 0.0f, c, N);
    }
#endif
    break;
  }
}

void bm_gemm(benchmark::State& state, dino::Ctx<dino::Cpu>* ctx, Impl impl, bool ta, bool tb, Index n) {
  const Mat a = random_matrix(n, 1), b = random_matrix(n, 2);
  Mat c({n, n});
  for (auto _ : state) {
    run_gemm(*ctx, impl, ta, tb, n, a.data(), b.data(), c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = ctx->threads();
}

// The benchmarks only mean something if the three paths compute the same product: compare them once.
bool paths_agree(dino::Ctx<dino::Cpu>& ctx) {
  constexpr Index n = 192;
  const Mat a = random_matrix(n, 3), b = random_matrix(n, 4);
  Mat ref({n, n}), c({n, n});
  for (int t = 0; t < 3; ++t) {
    const bool ta = t == 1, tb = t == 2;
    run_gemm(ctx, Impl::eigen, ta, tb, n, a.data(), b.data(), ref.data());
    std::vector<Impl> others = {Impl::dino};
#ifdef DINO_USE_OPENBLAS
    others.push_back(Impl::openblas);
#endif
    for (Impl impl : others) {
      run_gemm(ctx, impl, ta, tb, n, a.data(), b.data(), c.data());
      float worst = 0;
      for (Index i = 0; i < n * n; ++i) worst = std::fmax(worst, std::fabs(c.data()[i] - ref.data()[i]));
      // Sums of 192 products of values in [-1, 1): float rounding stays far below 1e-3.
      if (!(worst < 1e-3f)) {
        std::fprintf(stderr, "gemm_bench: implementation %d differs from Eigen by %g (ta=%d tb=%d)\n",
                     static_cast<int>(impl), static_cast<double>(worst), ta, tb);
        return false;
      }
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  dino::Ctx<dino::Cpu> ctx(kThreads);
  if (!paths_agree(ctx)) return 1;

  struct NamedImpl {
    const char* name;
    Impl impl;
  };
  std::vector<NamedImpl> impls = {{"dino", Impl::dino}, {"eigen", Impl::eigen}};
#ifdef DINO_USE_OPENBLAS
  impls.push_back({"openblas", Impl::openblas});
#endif
  struct Case {
    const char* op;
    bool ta, tb;
    Index n;
  };
  // Transposed products as in Linear (y = x W^T is nt, dW = dy^T x is tn) and conv backward, at one size.
  const Case cases[] = {{"nn", false, false, 256}, {"nn", false, false, 1024}, {"nn", false, false, 2048},
                        {"tn", true, false, 1024}, {"nt", false, true, 1024}};
  for (const Case& cs : cases)
    for (const NamedImpl& im : impls) {
      const std::string name = std::string("BM_gemm/") + im.name + "/" + cs.op + "/" + std::to_string(cs.n);
      benchmark::RegisterBenchmark(name.c_str(), bm_gemm, &ctx, im.impl, cs.ta, cs.tb, cs.n)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// The compute kernels one at a time, per format and size, so that a regression in one shows:
// the three products of a dense layer (gradsim::matmul), the normal sampler
// (Rng::fill_normal), the statistics of a tensor (stats_of, all_finite) and an activation's
// forward and backward pass (tanh, relu; through the built-in plugins). Counters: GFLOP/s for
// products, elements/s (items_per_second) for the rest.
// Usage: build/bin/kernels_bench [--benchmark_filter=REGEX]   (cmake --build build --target kernels_bench)
#include <benchmark/benchmark.h>

#include "network/stats.hpp"
#include "registry.hpp"

namespace {

using namespace gradsim;

using bench::registry;

template <class T>
Matrix<T> normal(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed) {
  Matrix<T> m(rows, cols);
  Rng(seed).fill_normal(m);
  return m;
}

// h = x W, dW = x^T dh, dx = dh W^T for a batch of 32 (width 32) or 128 rows.
template <class T>
void BM_DenseProducts(benchmark::State& state) {
  const Eigen::Index w = state.range(0), b = w <= 32 ? 32 : 128;
  const Matrix<T> x = normal<T>(b, w, 1), W = normal<T>(w, w, 2);
  Matrix<T> h, dW(w, w), dx;
  for (auto _ : state) {
    matmul(x, W, h);
    matmul(x, h, dW, {.transpose_a = true});
    matmul(h, W, dx, {.transpose_b = true});
    benchmark::DoNotOptimize(dx.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(6.0 * double(b * w * w) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_TEMPLATE(BM_DenseProducts, double)->Arg(32)->Arg(256)->Arg(1024);
BENCHMARK_TEMPLATE(BM_DenseProducts, float)->Arg(32)->Arg(256)->Arg(1024);
BENCHMARK_TEMPLATE(BM_DenseProducts, bfloat16)->Arg(32)->Arg(256);
BENCHMARK_TEMPLATE(BM_DenseProducts, float16)->Arg(32)->Arg(256);

// Draws of a width x width weight (in float64, rounded to T).
template <class T>
void BM_FillNormal(benchmark::State& state) {
  Matrix<T> m(state.range(0), state.range(0));
  Rng rng(3);
  for (auto _ : state) {
    rng.fill_normal(m, 0.1);
    benchmark::DoNotOptimize(m.data());
  }
  state.SetItemsProcessed(state.iterations() * m.size());
}
BENCHMARK_TEMPLATE(BM_FillNormal, double)->Arg(32)->Arg(1024);
BENCHMARK_TEMPLATE(BM_FillNormal, float)->Arg(32)->Arg(1024);

// The statistics of one tensor (what a trace records of it), and the overflow check.
template <class T>
void BM_Stats(benchmark::State& state) {
  const Matrix<T> m = normal<T>(state.range(0), state.range(0), 4);
  for (auto _ : state) benchmark::DoNotOptimize(stats_of(m));
  state.SetItemsProcessed(state.iterations() * m.size());
}
BENCHMARK_TEMPLATE(BM_Stats, double)->Arg(32)->Arg(1024);
BENCHMARK_TEMPLATE(BM_Stats, float)->Arg(32)->Arg(1024);
BENCHMARK_TEMPLATE(BM_Stats, bfloat16)->Arg(1024);
BENCHMARK_TEMPLATE(BM_Stats, float16)->Arg(1024);

template <class T>
void BM_AllFinite(benchmark::State& state) {
  const Matrix<T> m = normal<T>(1024, 1024, 5);
  for (auto _ : state) benchmark::DoNotOptimize(all_finite(m));
  state.SetItemsProcessed(state.iterations() * m.size());
}
BENCHMARK_TEMPLATE(BM_AllFinite, double);
BENCHMARK_TEMPLATE(BM_AllFinite, float);

// a = f(h) and dh = f'(h) da over a batch of 128 x 1024.
template <class T, bool kTanh, bool kBackward>
void BM_Activation(benchmark::State& state) {
  const auto& info = *registry().get(Kind::activation, kTanh ? "tanh" : "relu").info;
  const auto act = info.template make<T>().activation(Params{});
  const Matrix<T> h = normal<T>(128, 1024, 6), da = normal<T>(128, 1024, 7);
  Matrix<T> a, dh;
  act->forward(h, a);
  for (auto _ : state) {
    if (kBackward) act->backward(h, a, da, dh);
    else act->forward(h, a);
    benchmark::DoNotOptimize(a.data());
    benchmark::DoNotOptimize(dh.data());
  }
  state.SetItemsProcessed(state.iterations() * h.size());
}
// <format, tanh (else relu), backward (else forward)>
#define GRADSIM_ACTIVATION_BENCHMARKS(T)                 \
  BENCHMARK_TEMPLATE(BM_Activation, T, true, false);    \
  BENCHMARK_TEMPLATE(BM_Activation, T, true, true);     \
  BENCHMARK_TEMPLATE(BM_Activation, T, false, false);   \
  BENCHMARK_TEMPLATE(BM_Activation, T, false, true);
GRADSIM_ACTIVATION_BENCHMARKS(double)
GRADSIM_ACTIVATION_BENCHMARKS(float)
GRADSIM_ACTIVATION_BENCHMARKS(bfloat16)
GRADSIM_ACTIVATION_BENCHMARKS(float16)

}  // namespace

BENCHMARK_MAIN();

// How much slower are the emulated formats? One simulation (width 256, depth 16, batch 128,
// tanh, dense) in each format, and the dense layer's matrix product alone, so the share of
// the product in the simulation's time can be read off. Run through bench/formats.sh, which
// prints the ratios.
#include <benchmark/benchmark.h>

#include "network/engine.hpp"
#include "registry.hpp"
#include "spec/spec.hpp"

namespace {

using namespace gradsim;

using bench::registry;

v1::SimSpec spec_for(v1::DType dtype) {
  auto spec = parse_spec("base { network { depth: 16 width: 256 activation { name: \"tanh\" } } batch: 128 }", "bench");
  auto sim = sim_at(spec.sweep, 0);
  sim.set_dtype(dtype);
  resolve(sim, registry());
  return sim;
}

void BM_Simulation(benchmark::State& state) {
  const auto sim = spec_for(v1::DType(state.range(0)));
  for (auto _ : state) {
    v1::SimTrace t;
    simulate(sim, registry(), t);
    benchmark::DoNotOptimize(t);
  }
  state.SetLabel(v1::DType_Name(sim.dtype()));
}
BENCHMARK(BM_Simulation)->DenseRange(v1::FLOAT64, v1::FLOAT16)->Unit(benchmark::kMillisecond);

// The three products of one dense layer per pass, h = x W, dW = x^T dh, dx = dh W^T: as the
// engine does them (gradsim::matmul: float32 accumulation for the 16-bit formats), and with
// Eigen's emulated 16-bit arithmetic (rounding after every multiply-add), for comparison.
template <class T, bool kEigenEmulated>
void BM_DenseProducts(benchmark::State& state) {
  Matrix<T> x = Matrix<double>::Random(128, 256).cast<T>(), W = Matrix<double>::Random(256, 256).cast<T>();
  Matrix<T> h(128, 256), dW(256, 256), dx(128, 256);
  for (auto _ : state) {
    if constexpr (kEigenEmulated) {
      h.noalias() = x * W;
      dW.noalias() = x.transpose() * h;
      dx.noalias() = h * W.transpose();
    } else {
      matmul(x, W, h);
      matmul(x, h, dW, {.transpose_a = true});
      matmul(h, W, dx, {.transpose_b = true});
    }
    benchmark::DoNotOptimize(dx.data());
  }
}
BENCHMARK_TEMPLATE(BM_DenseProducts, double, false)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_DenseProducts, float, false)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_DenseProducts, bfloat16, false)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_DenseProducts, float16, false)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_DenseProducts, bfloat16, true)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_DenseProducts, float16, true)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

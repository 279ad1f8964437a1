// Parallel efficiency of a sweep: a fixed sweep of 24 mid-sized simulations (width 256,
// depth 32, batch 128, float32) run through run_sweep on 1..N threads. Run through
// bench/sweep.sh, which prints simulations per second and the efficiency.
#include <benchmark/benchmark.h>

#include <thread>

#include "plugin/registry.hpp"
#include "run/validate.hpp"
#include "spec/spec.hpp"
#include "run/sweep.hpp"

namespace {

using namespace gradsim;

void BM_Sweep(benchmark::State& state) {
  static const Registry registry = [] {
    Registry r;
    for (const auto& f : r.load({GRADSIM_PLUGIN_DIR})) throw std::runtime_error(f);
    return r;
  }();
  const auto spec = parse_spec(
      "seed: 1 replicas: 12 base { network { depth: 32 width: 256 } batch: 128 dtype: FLOAT32 }"
      " axis { path: \"network.activation.name\" texts: [\"tanh\", \"relu\"] }",
      "bench");
  const auto v = validate(spec, registry);
  SweepOptions options;
  options.threads = int(state.range(0));
  std::uint64_t sims = 0;
  for (auto _ : state) {
    run_sweep(spec, registry, v.count, options, [&](const v1::SimTrace& t) { benchmark::DoNotOptimize(t); });
    sims += v.count;
  }
  state.counters["sims_per_s"] = benchmark::Counter(double(sims), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sweep)->DenseRange(1, int(std::thread::hardware_concurrency()))->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

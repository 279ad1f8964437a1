// The float32 FMA ceiling of this machine: independent fused multiply-adds in registers, with
// the widest vectors the CPU has (AVX-512, else AVX2+FMA), on 1 to N threads at once.
// Prints one line per thread count: "threads N  GFLOP/s G  per-core P  (isa)". The benchmark
// table (bench/speed.py) compares gradsim's throughput with it.
// Usage: fma_peak [THREADS...]   (default: 1 and all cores)
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

constexpr long kSteps = 50'000'000;  // x 12 accumulators

// 12 independent chains hide the FMA latency (4 cycles, 2 ports). Each returns FLOP per second.
#define GRADSIM_FMA_CHAINS(V, SET, FMA, LANES)                                              \
  V acc[12];                                                                               \
  for (int i = 0; i < 12; ++i) acc[i] = SET(1.0f + float(i) * 1e-7f);                       \
  const V a = SET(0.999999f), b = SET(1e-7f);                                              \
  const auto t0 = std::chrono::steady_clock::now();                                        \
  for (long s = 0; s < kSteps; ++s) _Pragma("GCC unroll 12")                             \
    for (auto& x : acc) x = FMA(x, a, b);                                                  \
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); \
  float sum = 0;                                                                           \
  for (auto& x : acc) sum += reinterpret_cast<const float*>(&x)[0];                        \
  sink = sum;                                                                              \
  return 2.0 * LANES * 12 * double(kSteps) / seconds;

volatile float sink;
[[gnu::target("avx512f")]] double avx512() { GRADSIM_FMA_CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, 16) }
[[gnu::target("avx2,fma")]] double avx2() { GRADSIM_FMA_CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, 8) }

}  // namespace

int main(int argc, char** argv) {
  __builtin_cpu_init();
  const bool wide = __builtin_cpu_supports("avx512f");
  if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
    std::puts("fma_peak: this CPU has neither AVX-512 nor AVX2+FMA");
    return 1;
  }
  std::vector<int> counts;
  for (int i = 1; i < argc; ++i) counts.push_back(std::atoi(argv[i]));
  if (counts.empty()) counts = {1, int(std::thread::hardware_concurrency())};
  for (int isa = wide ? 0 : 1; isa < 2; ++isa)
    for (int n : counts) {
      std::vector<double> rate(static_cast<std::size_t>(n));
      std::vector<std::thread> threads;
      for (int t = 0; t < n; ++t) threads.emplace_back([&, t] { rate[std::size_t(t)] = isa == 0 ? avx512() : avx2(); });
      for (auto& t : threads) t.join();
      double total = 0;
      for (double r : rate) total += r;
      std::printf("threads %d  GFLOP/s %.1f  per-core %.1f  (%s)\n", n, total * 1e-9, total * 1e-9 / n,
                  isa == 0 ? "avx512" : "avx2");
    }
}

// The library's loops over arrays, each compiled per instruction-set level (GRADSIM_CLONES).
#include "simd.hpp"

#include <gradsim/simd.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace gradsim::simd {

namespace {

constexpr int kLanes = 8;  // partial sums, independent of the vector width
using v8f = float __attribute__((vector_size(32)));
using v4d = double __attribute__((vector_size(32)));

template <class T>
GRADSIM_CLONES void multiply_t(const T* g, const T* k, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = g[i] * k[i];
}

template <class T>
GRADSIM_CLONES double norm_t(const T* x, std::size_t n) {
  double s[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double v = to_double(x[i + std::size_t(l)]);
      s[l] += v * v;
    }
  for (int l = 0; i < n; ++i, ++l) {
    const double v = to_double(x[i]);
    s[l] += v * v;
  }
  double t = 0;
  for (double v : s) t += v;
  return std::sqrt(t);
}

template <class T>
GRADSIM_CLONES double max_abs_t(const T* x, std::size_t n) {
  double m[kLanes] = {};
  bool nan = false;
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double v = std::fabs(to_double(x[i + std::size_t(l)]));
      nan |= v != v;
      m[l] = v > m[l] ? v : m[l];
    }
  for (; i < n; ++i) {
    const double v = std::fabs(to_double(x[i]));
    nan |= v != v;
    m[0] = v > m[0] ? v : m[0];
  }
  if (nan) return NAN;
  double out = 0;
  for (double v : m) out = v > out ? v : out;
  return out;
}

// Eight partial sums down each column (lane l takes rows 8 k + l), then added in a fixed tree.
// float32 in vector registers (a GCC vector of 8: the same operations at every vector width).
template <class T>
GRADSIM_CLONES void add_column_sums_t(const T* m, std::size_t rows, std::size_t cols, T* out) {
  for (std::size_t j = 0; j < cols; ++j) {
    const T* c = m + j * rows;
    T s[kLanes] = {};
    std::size_t i = 0;
    if constexpr (std::is_same_v<T, float>) {
      v8f v = {};
      for (; i + kLanes <= rows; i += kLanes) {
        v8f x;
        std::memcpy(&x, c + i, sizeof x);
        v += x;
      }
      std::memcpy(s, &v, sizeof v);
    } else {
      for (; i + kLanes <= rows; i += kLanes)
        for (int l = 0; l < kLanes; ++l) s[l] += c[i + std::size_t(l)];
    }
    for (int l = 0; i < rows; ++i, ++l) s[l] += c[i];
    out[j] += ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
  }
}

template <class T>
GRADSIM_CLONES void scale_round_t(const double* x, double scale, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = T(scale * x[i]);
}

// out (cols x rows) = a^T, both column-major: 8 x 8 (float) or 4 x 4 (double) tiles transposed
// in vector registers by three (two) rounds of shuffles, the edges one value at a time.

[[gnu::always_inline]] inline void transpose_tile(const float* a, std::size_t lda, float* out, std::size_t ldo) {
  v8f r[8], t[8], u[8];
  for (int k = 0; k < 8; ++k) std::memcpy(&r[k], a + std::size_t(k) * lda, sizeof(v8f));
  for (int k = 0; k < 8; k += 2) {
    t[k] = __builtin_shufflevector(r[k], r[k + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[k + 1] = __builtin_shufflevector(r[k], r[k + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int k = 0; k < 8; k += 4)
    for (int h = 0; h < 2; ++h) {
      u[k + h] = __builtin_shufflevector(t[k + h], t[k + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
      u[k + h + 2] = __builtin_shufflevector(t[k + h], t[k + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    }
  // u[0] holds columns 0 (low half) and 4 (high half) of rows 0-3; u[4] the same of rows 4-7.
  constexpr int order[4] = {0, 2, 1, 3};
  for (int q = 0; q < 4; ++q) {
    const v8f lo = __builtin_shufflevector(u[order[q]], u[order[q] + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    const v8f hi = __builtin_shufflevector(u[order[q]], u[order[q] + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    std::memcpy(out + std::size_t(q) * ldo, &lo, sizeof lo);
    std::memcpy(out + std::size_t(q + 4) * ldo, &hi, sizeof hi);
  }
}

[[gnu::always_inline]] inline void transpose_tile(const double* a, std::size_t lda, double* out, std::size_t ldo) {
  v4d r[4];
  for (int k = 0; k < 4; ++k) std::memcpy(&r[k], a + std::size_t(k) * lda, sizeof(v4d));
  const v4d t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 2, 6), t1 = __builtin_shufflevector(r[0], r[1], 1, 5, 3, 7);
  const v4d t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 2, 6), t3 = __builtin_shufflevector(r[2], r[3], 1, 5, 3, 7);
  const v4d o[4] = {__builtin_shufflevector(t0, t2, 0, 1, 4, 5), __builtin_shufflevector(t1, t3, 0, 1, 4, 5),
                    __builtin_shufflevector(t0, t2, 2, 3, 6, 7), __builtin_shufflevector(t1, t3, 2, 3, 6, 7)};
  for (int k = 0; k < 4; ++k) std::memcpy(out + std::size_t(k) * ldo, &o[k], sizeof(v4d));
}

template <class T>
GRADSIM_CLONES void transpose_t(const T* a, std::size_t rows, std::size_t cols, T* out) {
  constexpr std::size_t b = 32 / sizeof(T);
  const std::size_t rows_b = rows / b * b, cols_b = cols / b * b;
  for (std::size_t j = 0; j < cols_b; j += b)
    for (std::size_t i = 0; i < rows_b; i += b) transpose_tile(a + i + j * rows, rows, out + j + i * cols, cols);
  for (std::size_t j = 0; j < cols; ++j)  // the edges
    for (std::size_t i = j < cols_b ? rows_b : 0; i < rows; ++i) out[j + i * cols] = a[i + j * rows];
}

// A double in [1, 2) from the top 52 of 64 random bits.
inline double one_to_two(std::uint64_t bits) {
  bits = (bits >> 12) | 0x3ff0000000000000ull;
  double m;
  std::memcpy(&m, &bits, 8);
  return m;
}

// The ziggurat of Marsaglia & Tsang (2000) with 256 layers: layer i (1 <= i < 256) is the box
// [0, x_i] x [f(x_i), f(x_{i+1})] under f(x) = exp(-x^2/2), x_1 = r, x_256 = 0; layer 0 is the
// base [0, x_0] x [0, f(r)] together with the tail beyond r, all of area v.
struct Ziggurat {
  static constexpr double r = 3.6541528853610088, v = 0.00492867323399;
  double x[257], ratio[256], f[257];
  Ziggurat() {
    x[0] = v / std::exp(-0.5 * r * r), x[1] = r, x[256] = 0;
    for (int i = 1; i < 255; ++i) x[i + 1] = std::sqrt(-2 * std::log(v / x[i] + std::exp(-0.5 * x[i] * x[i])));
    for (int i = 0; i < 256; ++i) ratio[i] = x[i + 1] / x[i];
    for (int i = 0; i < 257; ++i) f[i] = std::exp(-0.5 * x[i] * x[i]);
  }
};
const Ziggurat zig;

// One candidate from 64 bits: layer from the low 8, u in [-1, 1) from the top 52. Inside the
// part of the layer wholly under the curve (about 99 % of draws) it is the value; otherwise NaN.
inline double candidate(std::uint64_t bits) {
  const std::size_t layer = bits & 0xff;
  const double u = 2 * one_to_two(bits) - 3, a = u < 0 ? -u : u;
  return a < zig.ratio[layer] ? u * zig.x[layer] : NAN;
}

// The rare draws the fast path leaves: the wedges and the tail, then fresh candidates from a
// stream of their own, keyed by (key, j), until one is accepted.
std::uint64_t slow_stream(std::uint64_t key, std::uint64_t j) { return mix64(key ^ mix64(j ^ 0x5851f42d4c957f2dull)); }

// `wedge_failed`: the first candidate's first wedge test was made (by wedge_test) and failed.
double slow_normal(std::uint64_t key, std::uint64_t j, bool wedge_failed) {
  std::uint64_t stream = slow_stream(key, j), count = 0;
  auto bits = [&] { return mix64(stream + count++); };
  auto uniform = [&] { return 2 - one_to_two(bits()); };  // (0, 1]
  std::uint64_t b = mix64(key + j);
  if (wedge_failed) count = 1, b = bits();  // the test used the stream's first value
  for (;;) {
    const std::size_t layer = b & 0xff;
    const double u = 2 * one_to_two(b) - 3, x = u * zig.x[layer];
    if ((u < 0 ? -u : u) < zig.ratio[layer]) return x;
    if (layer == 0) {  // the tail beyond r (Marsaglia 1964)
      double t, y;
      do {
        t = -std::log(uniform()) / Ziggurat::r, y = -std::log(uniform());
      } while (2 * y < t * t);
      return u < 0 ? -(Ziggurat::r + t) : Ziggurat::r + t;
    }
    if (zig.f[layer] + uniform() * (zig.f[layer + 1] - zig.f[layer]) < vmath::exp(-0.5 * x * x)) return x;
    b = bits();
  }
}

// candidate(mix64(start + i)) for i < n: the same operations in vector registers (GCC 12 does
// not vectorise the table lookups on its own), so every version gives the same bits.
// Each writes the indices of the rejected candidates (NaN) to `rejected` and returns how many.
std::size_t candidates_scalar(std::uint64_t start, double* out, std::size_t n, std::uint32_t* rejected) {
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = candidate(mix64(start + i));
    if (out[i] != out[i]) rejected[k++] = std::uint32_t(i);
  }
  return k;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GRADSIM_NO_CLONES)
#define GRADSIM_GATHER_KERNELS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's own intrinsics headers
[[gnu::target("avx512f,avx512dq")]] std::size_t candidates_avx512(std::uint64_t start, double* out, std::size_t n,
                                                                   std::uint32_t* rejected) {
  const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), low8 = _mm512_set1_epi64(0xff);
  const __m512i one = _mm512_set1_epi64(0x3ff0000000000000ll);
  const __m512d two = _mm512_set1_pd(2), three = _mm512_set1_pd(3), nan = _mm512_set1_pd(NAN);
  std::size_t i = 0, k = 0;
  for (; i + 8 <= n; i += 8) {
    __m512i z = _mm512_add_epi64(_mm512_set1_epi64(std::int64_t(start + i + 0x9e3779b97f4a7c15ull)), lanes);
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64(std::int64_t(0xbf58476d1ce4e5b9ull)));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64(std::int64_t(0x94d049bb133111ebull)));
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    const __m512i layer = _mm512_and_si512(z, low8);
    const __m512d m = _mm512_castsi512_pd(_mm512_or_si512(_mm512_srli_epi64(z, 12), one));
    const __m512d u = _mm512_sub_pd(_mm512_mul_pd(two, m), three), a = _mm512_abs_pd(u);
    const __m512d ratio = _mm512_i64gather_pd(layer, zig.ratio, 8), width = _mm512_i64gather_pd(layer, zig.x, 8);
    const __mmask8 inside = _mm512_cmp_pd_mask(a, ratio, _CMP_LT_OQ);
    _mm512_storeu_pd(out + i, _mm512_mask_mul_pd(nan, inside, u, width));
    for (unsigned miss = ~unsigned(inside) & 0xffu; miss; miss &= miss - 1)
      rejected[k++] = std::uint32_t(i + unsigned(__builtin_ctz(miss)));
  }
  const std::size_t tail = candidates_scalar(start + i, out + i, n - i, rejected + k);
  for (std::size_t j = k; j < k + tail; ++j) rejected[j] += std::uint32_t(i);
  return k + tail;
}

// AVX2 has no 64-bit multiply: a c = lo(a) lo(c) + ((hi(a) lo(c) + lo(a) hi(c)) << 32).
[[gnu::target("avx2")]] inline __m256i mul64(__m256i a, std::uint64_t c) {
  const __m256i cl = _mm256_set1_epi64x(std::int64_t(c & 0xffffffffull)), ch = _mm256_set1_epi64x(std::int64_t(c >> 32));
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), cl), _mm256_mul_epu32(a, ch));
  return _mm256_add_epi64(_mm256_mul_epu32(a, cl), _mm256_slli_epi64(cross, 32));
}

[[gnu::target("avx2")]] std::size_t candidates_avx2(std::uint64_t start, double* out, std::size_t n,
                                                     std::uint32_t* rejected) {
  const __m256i lanes = _mm256_set_epi64x(3, 2, 1, 0), low8 = _mm256_set1_epi64x(0xff);
  const __m256i one = _mm256_set1_epi64x(0x3ff0000000000000ll);
  const __m256d two = _mm256_set1_pd(2), three = _mm256_set1_pd(3), nan = _mm256_set1_pd(NAN);
  const __m256d sign = _mm256_set1_pd(-0.0);
  std::size_t i = 0, k = 0;
  for (; i + 4 <= n; i += 4) {
    __m256i z = _mm256_add_epi64(_mm256_set1_epi64x(std::int64_t(start + i + 0x9e3779b97f4a7c15ull)), lanes);
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xbf58476d1ce4e5b9ull);
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94d049bb133111ebull);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    const __m256i layer = _mm256_and_si256(z, low8);
    const __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(z, 12), one));
    const __m256d u = _mm256_sub_pd(_mm256_mul_pd(two, m), three), a = _mm256_andnot_pd(sign, u);
    const __m256d ratio = _mm256_i64gather_pd(zig.ratio, layer, 8), width = _mm256_i64gather_pd(zig.x, layer, 8);
    const __m256d inside = _mm256_cmp_pd(a, ratio, _CMP_LT_OQ);
    _mm256_storeu_pd(out + i, _mm256_blendv_pd(nan, _mm256_mul_pd(u, width), inside));
    for (unsigned miss = ~unsigned(_mm256_movemask_pd(inside)) & 0xfu; miss; miss &= miss - 1)
      rejected[k++] = std::uint32_t(i + unsigned(__builtin_ctz(miss)));
  }
  const std::size_t tail = candidates_scalar(start + i, out + i, n - i, rejected + k);
  for (std::size_t j = k; j < k + tail; ++j) rejected[j] += std::uint32_t(i);
  return k + tail;
}
#pragma GCC diagnostic pop
#endif

// The version for this CPU, chosen once.
using Candidates = std::size_t (*)(std::uint64_t, double*, std::size_t, std::uint32_t*);
const Candidates candidates = [] {
#ifdef GRADSIM_GATHER_KERNELS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) return &candidates_avx512;
  if (__builtin_cpu_supports("avx2")) return &candidates_avx2;
#endif
  return &candidates_scalar;
}();

// The first wedge test of slow_normal() for a batch of rejected candidates, in vector
// registers (the same operations, so the same decisions): most of them end here.
GRADSIM_CLONES void wedge_test(const double* x, const double* lo, const double* hi, const double* u, double* accept,
                               std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) accept[i] = lo[i] + u[i] * (hi[i] - lo[i]) < vmath::exp(-0.5 * x[i] * x[i]);
}

}  // namespace

GRADSIM_CLONES void normal(std::uint64_t key, std::uint64_t first, double* out, std::size_t n) {
  constexpr std::size_t kChunk = 2048;
  std::uint32_t rejected[kChunk];
  for (std::size_t i = 0; i < n; i += kChunk) {
    const std::size_t m = std::min(kChunk, n - i), k = candidates(key + first + i, out + i, m, rejected);
    alignas(64) double x[kChunk], lo[kChunk], hi[kChunk], u[kChunk], accept[kChunk];
    for (std::size_t r = 0; r < k; ++r) {
      const std::uint64_t j = first + i + rejected[r], b = mix64(key + j);
      const std::size_t layer = b & 0xff;
      x[r] = (2 * one_to_two(b) - 3) * zig.x[layer];
      lo[r] = layer ? zig.f[layer] : 2, hi[r] = layer ? zig.f[layer + 1] : 2;  // base layer: never accepted here
      u[r] = 2 - one_to_two(mix64(slow_stream(key, j)));
    }
    wedge_test(x, lo, hi, u, accept, k);
    for (std::size_t r = 0; r < k; ++r)
      out[i + rejected[r]] = accept[r] != 0 ? x[r] : slow_normal(key, first + i + rejected[r], lo[r] != 2);
  }
}

#define GRADSIM_SIMD_DEFINE(T)                                                                              \
  void multiply(const T* g, const T* k, T* y, std::size_t n) { multiply_t(g, k, y, n); }                    \
  double norm(const T* x, std::size_t n) { return norm_t(x, n); }                                           \
  double max_abs(const T* x, std::size_t n) { return max_abs_t(x, n); }                                     \
  void widen(const Matrix<T>& x, Matrix<float>& y) { y = x.template cast<float>(); }                        \
  void narrow(const Matrix<float>& x, Matrix<T>& y) { y = x.template cast<T>(); }                           \
  void scale_round(const double* x, double scale, T* y, std::size_t n) { scale_round_t(x, scale, y, n); }      \
  void add_column_sums(const T* m, std::size_t rows, std::size_t cols, T* out) {                            \
    add_column_sums_t(m, rows, cols, out);                                                                  \
  }
GRADSIM_FOR_EACH_FORMAT(GRADSIM_SIMD_DEFINE)

void transpose(const float* a, std::size_t rows, std::size_t cols, float* out) { transpose_t(a, rows, cols, out); }
void transpose(const double* a, std::size_t rows, std::size_t cols, double* out) { transpose_t(a, rows, cols, out); }

}  // namespace gradsim::simd

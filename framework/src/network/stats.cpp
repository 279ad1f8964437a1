// Statistics of a tensor: a vectorised pass for tensors of finite values (the common case),
// and an exact scalar pass that also counts NaN and infinities.
#include "network/stats.hpp"

#include <gradsim/simd.hpp>

#include <cstring>
#include <limits>

namespace gradsim {

namespace {

// Smallest normal magnitude of T: below it (and above 0) a value is subnormal.
template <class T>
double tiny() {
  return to_double(std::numeric_limits<T>::min());
}

template <class T>
Stats scalar_stats(const T* x, std::size_t n) {
  Stats s;
  s.count = n;
  bool first = true;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = to_double(x[i]);
    if (std::isnan(v)) { ++s.nan; continue; }
    if (std::isinf(v)) { ++(v > 0 ? s.pos_inf : s.neg_inf); continue; }
    const double a = std::fabs(v);
    if (a == 0) ++s.zeros;
    else {
      if (a < tiny<T>()) ++s.subnormal;
      if (a > s.max_abs) s.max_abs = a;
      if (s.min_abs_nonzero == 0 || a < s.min_abs_nonzero) s.min_abs_nonzero = a;
    }
    if (first) s.shift = v, first = false;
    const double d = v - s.shift;
    s.sumsq += v * v, s.s1 += d, s.s2 += d * d;
  }
  return s;
}

// Eight float64 lanes, as two GCC vectors of four: the same operations in the same order on
// every instruction set (AVX-512 and AVX2 registers, or pairs of SSE2 ones; this file is
// compiled without contracting a * b + c into FMA, which only some of them have). Vectors of
// eight would be split into scalars in the AVX-512 clone by GCC 12.
using v4d = double __attribute__((vector_size(32)));

struct Lanes {
  v4d sumsq[2]{}, s1[2]{}, s2[2]{}, hi[2]{}, lo[2]{}, zeros[2]{}, sub[2]{}, bad[2]{};
};

// Adds x[0, n) (n a multiple of 8) to the lanes; `valid_last` weighs the last 8 values
// (1: a value, 0: padding).
GRADSIM_CLONES void add_lanes(const double* x, std::size_t n, double shift, double small, const double* valid_last,
                              Lanes& r) {
  const v4d zero = {}, one = zero + 1, big = zero + std::numeric_limits<double>::max();
  for (int h = 0; h < 2; ++h) {
    v4d sumsq = r.sumsq[h], s1 = r.s1[h], s2 = r.s2[h], hi = r.hi[h], lo = r.lo[h];
    v4d zeros = r.zeros[h], sub = r.sub[h], bad = r.bad[h];
    for (std::size_t j = std::size_t(4 * h); j < n; j += 8) {
      v4d v, valid = one;
      std::memcpy(&v, x + j, sizeof v);
      if (j + 8 >= n) std::memcpy(&valid, valid_last + 4 * h, sizeof valid);
      const v4d a = v < 0 ? -v : v, d = (v - shift) * valid;
      bad += a <= big ? zero : valid;
      sumsq += v * v * valid, s1 += d, s2 += d * d;
      zeros += a == 0 ? valid : zero;
      sub += ((a > 0) & (a < small)) ? valid : zero;
      hi = a > hi ? a : hi;
      lo = ((a > 0) & (a < lo)) ? a : lo;
    }
    r.sumsq[h] = sumsq, r.s1[h] = s1, r.s2[h] = s2, r.hi[h] = hi, r.lo[h] = lo;
    r.zeros[h] = zeros, r.sub[h] = sub, r.bad[h] = bad;
  }
}

// Values as float64, a block at a time (a plain loop, vectorised).
constexpr std::size_t kBlock = 256;

// Sums shifted by x[0]; false (and s untouched) if a value is not finite.
template <class T>
bool lane_stats(const T* x, std::size_t n, Stats& s) {
  const double shift = to_double(x[0]);
  Lanes r;
  r.lo[0] += INFINITY, r.lo[1] += INFINITY;
  alignas(64) double buf[kBlock];
  alignas(64) double valid[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  for (std::size_t i = 0; i < n; i += kBlock) {
    const std::size_t m = std::min(kBlock, n - i), padded = (m + 7) & ~std::size_t(7);
    for (std::size_t j = 0; j < m; ++j) buf[j] = to_double(x[i + j]);
    for (std::size_t j = m; j < padded; ++j) buf[j] = 0, valid[j % 8] = 0;  // zeros that count for nothing
    add_lanes(buf, padded, shift, tiny<T>(), valid, r);
  }
  double nonfinite = 0;
  for (int l = 0; l < 8; ++l) nonfinite += r.bad[l / 4][l % 4];
  if (nonfinite > 0) return false;
  s.count = n, s.shift = shift;
  double min_nz = INFINITY, z = 0, u = 0;
  for (int l = 0; l < 8; ++l) {
    const int h = l / 4, k = l % 4;
    s.sumsq += r.sumsq[h][k], s.s1 += r.s1[h][k], s.s2 += r.s2[h][k], z += r.zeros[h][k], u += r.sub[h][k];
    s.max_abs = std::max(s.max_abs, r.hi[h][k]);
    min_nz = std::min(min_nz, r.lo[h][k]);
  }
  s.zeros = std::uint64_t(z), s.subnormal = std::uint64_t(u);
  s.min_abs_nonzero = min_nz == INFINITY ? 0 : min_nz;
  return true;
}

template <class T>
GRADSIM_CLONES bool all_finite_t(const T* x, std::size_t n) {
  // Finite values times 0 are 0; infinities and NaN make NaN. No branch: vectorises.
  T acc[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + std::size_t(l)] * T(0);
  for (; i < n; ++i) acc[0] += x[i] * T(0);
  T sum = T(0);
  for (T v : acc) sum += v;
  return sum == T(0);
}

}  // namespace

template <class T>
Stats stats_of(const Matrix<T>& m) {
  const std::size_t n = std::size_t(m.size());
  Stats s;
  if (n > 0 && lane_stats(m.data(), n, s)) return s;
  return scalar_stats(m.data(), n);
}

template <class T>
bool all_finite(const Matrix<T>& m) {
  return all_finite_t(m.data(), std::size_t(m.size()));
}

#define GRADSIM_INSTANTIATE_STATS(T)          \
  template Stats stats_of(const Matrix<T>&); \
  template bool all_finite(const Matrix<T>&);
GRADSIM_FOR_EACH_FORMAT(GRADSIM_INSTANTIATE_STATS)

}  // namespace gradsim

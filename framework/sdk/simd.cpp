// The library's loops over arrays, each compiled per instruction-set level (GRADSIM_CLONES).
#include "simd.hpp"

#include <gradsim/simd.hpp>

#include <cmath>
#include <cstring>

namespace gradsim::simd {

namespace {

constexpr int kLanes = 8;  // partial sums, independent of the vector width

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

template <class T>
GRADSIM_CLONES void scale_round_t(const double* x, double scale, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = T(scale * x[i]);
}

// ln x for x in (0, 1], branch-free so that it vectorises: x = 2^e m with m in
// [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m - 1)/(m + 1), |s| < 0.172, by its series to
// s^23 (truncation below 1e-17 relative). Within 2 ulp of std::log.
inline double log_unit(double x) {
  std::uint64_t bits, ebits;
  std::memcpy(&bits, &x, 8);
  ebits = (bits >> 52) | 0x4330000000000000ull;  // 2^52 + biased exponent, exactly
  double e;
  std::memcpy(&e, &ebits, 8);
  e -= 0x1.0p52 + 1023;
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
  double m;
  std::memcpy(&m, &bits, 8);
  const bool big = m > M_SQRT2;
  m = big ? 0.5 * m : m;
  e = big ? e + 1 : e;
  const double s = (m - 1) / (m + 1), s2 = s * s;
  double p = 1.0 / 23;
  for (int k = 21; k >= 1; k -= 2) p = p * s2 + 1.0 / k;
  constexpr double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
  return e * ln2_hi + (2 * s * p + e * ln2_lo);
}

// sin and cos of 2 pi u for u in [0, 1): u = (q + f)/4 with q an integer and |f| <= 1/2
// (exact), y = f pi/2 in [-pi/4, pi/4], Taylor series to y^17 / y^16 (truncation below
// 1e-17), then the quadrant q mod 4. Doubles only, so that it vectorises without AVX-512.
inline void sincos_turn(double u, double& s, double& c) {
  const double t = 4 * u, q = std::nearbyint(t), y = (t - q) * M_PI_2, y2 = y * y;
  double ps = 1.0, pc = 1.0;
  for (int k = 17; k >= 3; k -= 2) ps = 1 - ps * y2 * (1 / (double(k) * double(k - 1)));
  for (int k = 16; k >= 2; k -= 2) pc = 1 - pc * y2 * (1 / (double(k) * double(k - 1)));
  const double sy = y * ps, cy = pc;
  const double q4 = q == 4 ? 0.0 : q;  // q is 0, 1, 2, 3 or 4
  const bool odd = q4 == 1 || q4 == 3, upper = q4 >= 2;
  const double s1 = odd ? cy : sy, c1 = odd ? -sy : cy;
  s = upper ? -s1 : s1;
  c = upper ? -c1 : c1;
}

// A double in [1, 2) from the top 52 of 64 random bits.
inline double one_to_two(std::uint64_t bits) {
  bits = (bits >> 12) | 0x3ff0000000000000ull;
  double m;
  std::memcpy(&m, &bits, 8);
  return m;
}

GRADSIM_CLONES void normal_pairs_impl(std::uint64_t key, std::uint64_t first, double* out, std::size_t n) {
  for (std::size_t i = 0; i < n; i += 2) {
    const std::uint64_t j = first + i;
    const double u1 = 2 - one_to_two(mix64(key + j));      // (0, 1]
    const double u2 = one_to_two(mix64(key + j + 1)) - 1;  // [0, 1)
    const double r = std::sqrt(-2 * log_unit(u1));
    double s, c;
    sincos_turn(u2, s, c);
    out[i] = r * c, out[i + 1] = r * s;
  }
}

}  // namespace

void normal_pairs(std::uint64_t key, std::uint64_t first, double* out, std::size_t n) {
  normal_pairs_impl(key, first, out, n);
}

#define GRADSIM_SIMD_DEFINE(T)                                                                              \
  void multiply(const T* g, const T* k, T* y, std::size_t n) { multiply_t(g, k, y, n); }                    \
  double norm(const T* x, std::size_t n) { return norm_t(x, n); }                                           \
  double max_abs(const T* x, std::size_t n) { return max_abs_t(x, n); }                                     \
  void widen(const Matrix<T>& x, Matrix<float>& y) { y = x.template cast<float>(); }                        \
  void narrow(const Matrix<float>& x, Matrix<T>& y) { y = x.template cast<T>(); }                           \
  void scale_round(const double* x, double scale, T* y, std::size_t n) { scale_round_t(x, scale, y, n); }
GRADSIM_FOR_EACH_FORMAT(GRADSIM_SIMD_DEFINE)

}  // namespace gradsim::simd

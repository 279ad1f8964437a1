// Statistics of a tensor: a vectorised pass for tensors of finite values (the common case),
// and an exact scalar pass that also counts NaN and infinities.
#include "network/stats.hpp"

#include <gradsim/simd.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

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

// Sixteen float64 lanes, as four GCC vectors of four: the same operations in the same order
// on every instruction set (AVX-512 and AVX2 registers, or pairs of SSE2 ones; this file is
// compiled without contracting a * b + c into FMA, which only some of them have). Four
// independent sets of partial sums keep the adders busy. (Vectors of eight would be split
// into scalars in the AVX-512 clone by GCC 12.)
using v4d = double __attribute__((vector_size(32)));
using v4f = float __attribute__((vector_size(16)));
constexpr int kSets = 4, kLanes = 4 * kSets;

struct Lanes {
  v4d sumsq[kSets]{}, s1[kSets]{}, s2[kSets]{}, hi[kSets]{}, lo[kSets]{}, zeros[kSets]{}, small[kSets]{};
};

// Adds x[0, n) (float or double, n a multiple of 16) to the lanes. Non-finite values make the
// sums non-finite.
template <class T>
GRADSIM_CLONES void add_lanes(const T* x, std::size_t n, double shift, double tiny, Lanes& r) {
  const v4d zero = {}, one = zero + 1, inf = zero + INFINITY;
  Lanes a = r;
  for (std::size_t j = 0; j < n; j += kLanes)
    for (int h = 0; h < kSets; ++h) {
      v4d v;
      if constexpr (std::is_same_v<T, double>) {
        std::memcpy(&v, x + j + std::size_t(4 * h), sizeof v);
      } else {
        v4f f;
        std::memcpy(&f, x + j + std::size_t(4 * h), sizeof f);
        v = __builtin_convertvector(f, v4d);
      }
      const v4d mag = v < 0 ? -v : v, d = v - shift;
      a.sumsq[h] += v * v, a.s1[h] += d, a.s2[h] += d * d;
      a.zeros[h] += mag == 0 ? one : zero;
      a.small[h] += mag < tiny ? one : zero;  // zeros and subnormals
      a.hi[h] = mag > a.hi[h] ? mag : a.hi[h];
      const v4d nz = mag > 0 ? mag : inf;
      a.lo[h] = nz < a.lo[h] ? nz : a.lo[h];
    }
  r = a;
}

// Sums shifted by x[0]; false (and s untouched) if a value is not finite. 16-bit values are
// widened to float a block at a time; the last block is padded with zeros, taken out after.
template <class T>
bool lane_stats(const T* x, std::size_t n, Stats& s) {
  using Wide = std::conditional_t<std::is_floating_point_v<T>, T, float>;
  constexpr std::size_t kBlock = 1024;
  const double shift = to_double(x[0]);
  Lanes r;
  for (auto& v : r.lo) v += INFINITY;
  alignas(64) Wide buf[kBlock];
  std::size_t pad = 0;
  for (std::size_t i = 0; i < n; i += kBlock) {
    const std::size_t m = std::min(kBlock, n - i), whole = m / kLanes * kLanes;
    const Wide* block = reinterpret_cast<const Wide*>(x + i);
    if constexpr (!std::is_same_v<Wide, T>) {
      for (std::size_t j = 0; j < m; ++j) buf[j] = static_cast<float>(x[i + j]);
      block = buf;
    }
    if (whole) add_lanes(block, whole, shift, tiny<T>(), r);
    if (whole < m) {
      alignas(64) Wide last[kLanes] = {};
      for (std::size_t j = whole; j < m; ++j) last[j - whole] = block[j];
      pad = kLanes - (m - whole);
      add_lanes(last, kLanes, shift, tiny<T>(), r);
    }
  }
  double sums = 0, min_nz = INFINITY, z = 0, u = 0;
  for (int l = 0; l < kLanes; ++l) sums += r.sumsq[l / 4][l % 4] + r.s1[l / 4][l % 4] + r.s2[l / 4][l % 4];
  if (!std::isfinite(sums)) return false;  // a NaN or infinity (or squares past float64)
  s.count = n, s.shift = shift;
  for (int l = 0; l < kLanes; ++l) {
    const int h = l / 4, k = l % 4;
    s.sumsq += r.sumsq[h][k], s.s1 += r.s1[h][k], s.s2 += r.s2[h][k], z += r.zeros[h][k], u += r.small[h][k];
    s.max_abs = std::max(s.max_abs, r.hi[h][k]);
    min_nz = std::min(min_nz, r.lo[h][k]);
  }
  const double p = double(pad);  // each padding zero added -shift to s1, shift^2 to s2, 1 to both counts
  s.s1 += p * shift, s.s2 -= p * shift * shift, z -= p, u -= p;
  s.zeros = std::uint64_t(z), s.subnormal = std::uint64_t(u - z);
  s.min_abs_nonzero = min_nz == INFINITY ? 0 : min_nz;
  return true;
}

// Whether no value has the all-ones exponent of infinity and NaN: an unsigned maximum over the
// exponent bits (vectorises).
template <class T>
GRADSIM_CLONES bool all_finite_t(const T* x, std::size_t n) {
  if constexpr (std::is_floating_point_v<T>) {
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr U mask = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
    U top = 0;
    for (std::size_t i = 0; i < n; ++i) {
      U bits;
      std::memcpy(&bits, x + i, sizeof bits);
      bits &= mask;
      top = bits > top ? bits : top;
    }
    return top != mask;
  } else {
    bool ok = true;
    for (std::size_t i = 0; i < n; ++i) ok = ok && std::isfinite(to_double(x[i]));
    return ok;
  }
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

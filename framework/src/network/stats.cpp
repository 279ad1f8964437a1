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

// Sixteen lanes, in GCC vectors of 32 bytes: the same operations in the same order on every
// instruction set (AVX-512 and AVX2 registers, or pairs of SSE2 ones; this file is compiled
// without contracting a * b + c into FMA, which only some of them have), so the results do not
// depend on the CPU. The sums run in float64 (four vectors of four). Counts and extremes run on
// the values' bits: for |x| (the sign bit cleared) the order of the bits as unsigned integers
// is the order of the magnitudes, exactly, with 8 float (4 double) lanes per vector.
using v4d = double __attribute__((vector_size(32)));
using v4f = float __attribute__((vector_size(16)));
constexpr int kLanes = 16;

template <class W>
struct BitsOf;
template <>
struct BitsOf<float> {
  using U = std::uint32_t;
  using V = std::uint32_t __attribute__((vector_size(32)));
  using S = std::int32_t __attribute__((vector_size(32)));
};
template <>
struct BitsOf<double> {
  using U = std::uint64_t;
  using V = std::uint64_t __attribute__((vector_size(32)));
  using S = std::int64_t __attribute__((vector_size(32)));
};

template <class W>
struct Lanes {
  using V = typename BitsOf<W>::V;
  static constexpr int kSets = kLanes * int(sizeof(W)) / 32;
  v4d sumsq[4]{}, s1[4]{}, s2[4]{};
  V hi[kSets]{}, lo[kSets]{};  // max |x| bits; min of (|x| bits - 1): 0 wraps to the largest
  std::uint64_t zeros = 0, small = 0;
};

// Adds x[0, n) (n a multiple of 16, below 2^34) to the lanes. Non-finite values make the
// sums non-finite. `tiny`: the bits of the smallest normal magnitude of the simulated format.
template <class W>
GRADSIM_CLONES void add_lanes(const W* x, std::size_t n, double shift, typename BitsOf<W>::U tiny, Lanes<W>& r) {
  using B = BitsOf<W>;
  using V = typename B::V;
  using S = typename B::S;
  constexpr int kSets = Lanes<W>::kSets;
  constexpr typename B::U magnitude = ~typename B::U(0) >> 1;
  Lanes<W> a = r;
  S zeros[kSets]{}, small[kSets]{};  // minus the counts (a true comparison is -1)
  for (std::size_t j = 0; j < n; j += kLanes) {
    __builtin_prefetch(x + j + 512);  // 2 KB ahead: the hardware prefetcher alone falls behind
    for (int h = 0; h < 4; ++h) {
      v4d v;
      if constexpr (std::is_same_v<W, double>) {
        std::memcpy(&v, x + j + std::size_t(4 * h), sizeof v);
      } else {
        v4f f;
        std::memcpy(&f, x + j + std::size_t(4 * h), sizeof f);
        v = __builtin_convertvector(f, v4d);
      }
      const v4d d = v - shift;
      a.sumsq[h] += v * v, a.s1[h] += d, a.s2[h] += d * d;
    }
    for (int k = 0; k < kSets; ++k) {
      V b;
      std::memcpy(&b, x + j + std::size_t(k) * (32 / sizeof(W)), sizeof b);
      b &= magnitude;
      zeros[k] += b == 0;
      small[k] += b < tiny;  // zeros and subnormals
      a.hi[k] = b > a.hi[k] ? b : a.hi[k];
      const V m = b - 1;
      a.lo[k] = m < a.lo[k] ? m : a.lo[k];
    }
  }
  for (int k = 0; k < kSets; ++k)
    for (int l = 0; l < int(32 / sizeof(W)); ++l)
      a.zeros -= std::uint64_t(std::int64_t(zeros[k][l])), a.small -= std::uint64_t(std::int64_t(small[k][l]));
  r = a;
}

template <class W>
double from_bits(typename BitsOf<W>::U bits) {
  W w;
  std::memcpy(&w, &bits, sizeof w);
  return double(w);
}

// Sums shifted by x[0]; false (and s untouched) if a value is not finite. 16-bit values are
// widened to float a block at a time; the last block is padded with zeros, taken out after.
template <class T>
bool lane_stats(const T* x, std::size_t n, Stats& s) {
  using W = std::conditional_t<std::is_floating_point_v<T>, T, float>;
  using U = typename BitsOf<W>::U;
  constexpr std::size_t kBlock = 1024;
  const double shift = to_double(x[0]);
  const W small = W(tiny<T>());
  U tiny_bits;
  std::memcpy(&tiny_bits, &small, sizeof tiny_bits);
  Lanes<W> r;
  for (auto& v : r.lo) v = ~v;  // all ones
  std::size_t pad = 0;
  auto add = [&](const W* block, std::size_t m) {  // whole groups of 16, then the rest padded
    const std::size_t whole = m / kLanes * kLanes;
    if (whole) add_lanes(block, whole, shift, tiny_bits, r);
    if (whole < m) {
      alignas(64) W last[kLanes] = {};
      for (std::size_t j = whole; j < m; ++j) last[j - whole] = block[j];
      pad = kLanes - (m - whole);
      add_lanes(last, kLanes, shift, tiny_bits, r);
    }
  };
  if constexpr (std::is_same_v<W, T>) {
    add(x, n);
  } else {
    alignas(64) W buf[kBlock];
    for (std::size_t i = 0; i < n; i += kBlock) {
      const std::size_t m = std::min(kBlock, n - i);
      for (std::size_t j = 0; j < m; ++j) buf[j] = static_cast<float>(x[i + j]);
      add(buf, m);
    }
  }
  double sums = 0;
  for (int l = 0; l < kLanes; ++l) sums += r.sumsq[l / 4][l % 4] + r.s1[l / 4][l % 4] + r.s2[l / 4][l % 4];
  if (!std::isfinite(sums)) return false;  // a NaN or infinity (or squares past float64)
  s.count = n, s.shift = shift;
  for (int l = 0; l < kLanes; ++l) s.sumsq += r.sumsq[l / 4][l % 4], s.s1 += r.s1[l / 4][l % 4], s.s2 += r.s2[l / 4][l % 4];
  U hi = 0, lo = ~U(0);
  for (int k = 0; k < Lanes<W>::kSets; ++k)
    for (int l = 0; l < int(32 / sizeof(W)); ++l) hi = std::max<U>(hi, r.hi[k][l]), lo = std::min<U>(lo, r.lo[k][l]);
  // Each padding zero added -shift to s1, shift^2 to s2 and 1 to both counts.
  const double p = double(pad);
  s.s1 += p * shift, s.s2 -= p * shift * shift;
  s.zeros = r.zeros - pad, s.subnormal = r.small - r.zeros;
  s.max_abs = from_bits<W>(hi);
  s.min_abs_nonzero = lo == ~U(0) ? 0 : from_bits<W>(lo + 1);
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

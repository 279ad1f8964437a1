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

// Sixteen lanes, in GCC vectors of VB bytes (32: AVX2 registers, or pairs of SSE2 ones; 64:
// AVX-512 registers, in a kernel of its own, since GCC keeps 32-byte vectors inside
// target_clones): the same operations in the same order on every instruction set (this file
// is compiled without contracting a * b + c into FMA, which only some of them have), so the
// results do not depend on the CPU. Lane l adds the values 16 j + l. The sums run in float64.
// Counts and extremes run on the values' bits: for |x| (the sign bit cleared) the order of the
// bits as unsigned integers is the order of the magnitudes, exactly.
constexpr int kLanes = 16;

// GCC's vector types of VB bytes (spelt per size: GCC 12 does not take a vector_size that
// depends on a template parameter everywhere).
template <int VB>
struct Vec;
#define GRADSIM_VECTORS(VB)                                  \
  template <>                                                \
  struct Vec<VB> {                                           \
    using D = double __attribute__((vector_size(VB)));       \
    using F = float __attribute__((vector_size(VB / 2)));    \
    using U32 = std::uint32_t __attribute__((vector_size(VB))); \
    using S32 = std::int32_t __attribute__((vector_size(VB)));  \
    using U64 = std::uint64_t __attribute__((vector_size(VB))); \
    using S64 = std::int64_t __attribute__((vector_size(VB)));  \
  };
GRADSIM_VECTORS(32)
GRADSIM_VECTORS(64)
#undef GRADSIM_VECTORS

template <class W, int VB>
struct BitsOf;
template <int VB>
struct BitsOf<float, VB> {
  using U = std::uint32_t;
  using V = typename Vec<VB>::U32;
  using S = typename Vec<VB>::S32;
};
template <int VB>
struct BitsOf<double, VB> {
  using U = std::uint64_t;
  using V = typename Vec<VB>::U64;
  using S = typename Vec<VB>::S64;
};

template <class W, int VB>
struct Lanes {
  using D = typename Vec<VB>::D;
  using V = typename BitsOf<W, VB>::V;
  static constexpr int kSums = kLanes * 8 / VB, kSets = kLanes * int(sizeof(W)) / VB;
  D sumsq[kSums]{}, s1[kSums]{}, s2[kSums]{};
  V hi[kSets]{}, lo[kSets]{};  // max |x| bits; min of (|x| bits - 1): 0 wraps to the largest
  std::uint64_t zeros = 0, small = 0;
};

// Eight floats widened to float64 (exact). GCC 12 splits __builtin_convertvector of 8 floats
// into 4 + 4 with a shuffle and an insert; the 64-byte kernel says the one instruction itself.
template <int VB>
[[gnu::always_inline]] inline void widen(const float* x, typename Vec<VB>::D& v) {
  typename Vec<VB>::F f;
  std::memcpy(&f, x, sizeof f);
#if defined(__x86_64__) && defined(__GNUC__)
  if constexpr (VB == 64) {
    asm("vcvtps2pd %1, %0" : "=v"(v) : "vm"(f));
    return;
  }
#endif
  v = __builtin_convertvector(f, typename Vec<VB>::D);
}

// Adds x[0, n) (n a multiple of 16, below 2^34) to the lanes. Non-finite values make the
// sums non-finite. `tiny`: the bits of the smallest normal magnitude of the simulated format.
template <class W, int VB>
[[gnu::always_inline]] inline void add_lanes_body(const W* x, std::size_t n, double shift, typename BitsOf<W, VB>::U tiny, Lanes<W, VB>& r) {
  using B = BitsOf<W, VB>;
  using L = Lanes<W, VB>;
  using D = typename L::D;
  using V = typename B::V;
  using S = typename B::S;
  constexpr int kSets = L::kSets, kPer = VB / 8;
  constexpr typename B::U magnitude = ~typename B::U(0) >> 1;
  L a = r;
  S zeros[kSets]{}, small[kSets]{};  // minus the counts (a true comparison is -1)
  for (std::size_t j = 0; j < n; j += kLanes) {
    __builtin_prefetch(x + j + 512);  // 2 KB ahead: the hardware prefetcher alone falls behind
    for (int h = 0; h < L::kSums; ++h) {
      D v;
      if constexpr (std::is_same_v<W, double>) {
        std::memcpy(&v, x + j + std::size_t(kPer * h), sizeof v);
      } else {
        widen<VB>(x + j + std::size_t(kPer * h), v);
      }
      const D d = v - shift;
      a.sumsq[h] += v * v, a.s1[h] += d, a.s2[h] += d * d;
    }
    for (int k = 0; k < kSets; ++k) {
      V b;
      std::memcpy(&b, x + j + std::size_t(k) * (VB / sizeof(W)), sizeof b);
      b &= magnitude;
      if constexpr (VB == 64) {  // a masked subtraction in AVX-512 (one instruction, not two)
        zeros[k] = b == 0 ? zeros[k] - 1 : zeros[k];
        small[k] = b < tiny ? small[k] - 1 : small[k];
      } else {
        zeros[k] += b == 0;
        small[k] += b < tiny;  // zeros and subnormals
      }
      a.hi[k] = b > a.hi[k] ? b : a.hi[k];
      const V m = b - 1;
      a.lo[k] = m < a.lo[k] ? m : a.lo[k];
    }
  }
  using I = std::conditional_t<sizeof(W) == 4, std::int32_t, std::int64_t>;
  I z[kLanes], t[kLanes];
  std::memcpy(z, zeros, sizeof z), std::memcpy(t, small, sizeof t);
  for (int l = 0; l < kLanes; ++l) a.zeros -= std::uint64_t(std::int64_t(z[l])), a.small -= std::uint64_t(std::int64_t(t[l]));
  r = a;
}

template <class W>
GRADSIM_CLONES void add_lanes(const W* x, std::size_t n, double shift, typename BitsOf<W, 32>::U tiny, Lanes<W, 32>& r) {
  add_lanes_body<W, 32>(x, n, shift, tiny, r);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GRADSIM_NO_CLONES)
#define GRADSIM_STATS_512
template <class W>
[[gnu::target("arch=x86-64-v4,prefer-vector-width=512")]] void add_lanes(const W* x, std::size_t n, double shift,
                                                                         typename BitsOf<W, 64>::U tiny,
                                                                         Lanes<W, 64>& r) {
  add_lanes_body<W, 64>(x, n, shift, tiny, r);
}
#endif

template <class W>
double from_bits(typename BitsOf<W, 32>::U bits) {
  W w;
  std::memcpy(&w, &bits, sizeof w);
  return double(w);
}

// Sums shifted by x[0]; false (and s untouched) if a value is not finite. 16-bit values are
// widened to float a block at a time; the last block is padded with zeros, taken out after.
template <int VB, class T>
bool lane_stats(const T* x, std::size_t n, Stats& s) {
  using W = std::conditional_t<std::is_floating_point_v<T>, T, float>;
  using U = typename BitsOf<W, VB>::U;
  using L = Lanes<W, VB>;
  constexpr std::size_t kBlock = 1024;
  const double shift = to_double(x[0]);
  const W small = W(tiny<T>());
  U tiny_bits;
  std::memcpy(&tiny_bits, &small, sizeof tiny_bits);
  L r;
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
  double sumsq[kLanes], s1[kLanes], s2[kLanes];  // lane l at index l, whatever VB
  std::memcpy(sumsq, r.sumsq, sizeof sumsq), std::memcpy(s1, r.s1, sizeof s1), std::memcpy(s2, r.s2, sizeof s2);
  double sums = 0;
  for (int l = 0; l < kLanes; ++l) sums += sumsq[l] + s1[l] + s2[l];
  if (!std::isfinite(sums)) return false;  // a NaN or infinity (or squares past float64)
  s.count = n, s.shift = shift;
  for (int l = 0; l < kLanes; ++l) s.sumsq += sumsq[l], s.s1 += s1[l], s.s2 += s2[l];
  U his[kLanes], los[kLanes], hi = 0, lo = ~U(0);
  std::memcpy(his, r.hi, sizeof his), std::memcpy(los, r.lo, sizeof los);
  for (int l = 0; l < kLanes; ++l) hi = std::max(hi, his[l]), lo = std::min(lo, los[l]);
  // Each padding zero added -shift to s1, shift^2 to s2 and 1 to both counts.
  const double p = double(pad);
  s.s1 += p * shift, s.s2 -= p * shift * shift;
  s.zeros = r.zeros - pad, s.subnormal = r.small - r.zeros;
  s.max_abs = from_bits<W>(hi);
  s.min_abs_nonzero = lo == ~U(0) ? 0 : from_bits<W>(lo + 1);
  return true;
}

// The 64-byte kernel where the CPU has AVX-512 (chosen once).
const bool use_512 = [] {
#ifdef GRADSIM_STATS_512
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}();

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
#ifdef GRADSIM_STATS_512
  if (n > 0 && use_512 && lane_stats<64>(m.data(), n, s)) return s;
#endif
  if (n > 0 && !use_512 && lane_stats<32>(m.data(), n, s)) return s;
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

// exp, expm1 and tanh in float64 written without branches or library calls, so that a loop
// over an array compiles to vector code (GRADSIM_CLONES picks AVX-512 / AVX2 / SSE2 versions
// at load time). gradsim::fn uses them for every format; float32 and the 16-bit formats
// compute in float64 and round. Accuracy, tested against the C library over their whole
// range (tests/unit/sdk_test.cpp): within 2 ulp (exp), 3 ulp (expm1), 3.5 ulp (tanh) in float64; the
// float32 results are within 1 ulp of the correctly rounded value. NaN stays NaN, the limits
// at +-infinity are exact, results that underflow are subnormal or 0 as in the C library.
#pragma once

#include <cstdint>
#include <cstring>

namespace gradsim::vmath {

namespace detail {
/// x rounded to the nearest integer (ties to even) for |x| < 2^51, by the float64 adder.
inline double round_int(double x) {
  constexpr double magic = 0x1.8p52;  // without -ffast-math the compiler keeps both roundings
  return (x + magic) - magic;
}
/// 2^k for an integer-valued k in [-1022, 1023].
inline double pow2(double k) {
  std::uint64_t bits;
  const double biased = k + (0x1.8p52 + 1023);
  std::memcpy(&bits, &biased, 8);
  bits <<= 52;
  double out;
  std::memcpy(&out, &bits, 8);
  return out;
}
/// 1/k! for k <= N (N! exact for N <= 18; one rounding each).
template <int N>
struct InverseFactorials {
  double c[N + 1] = {};
  constexpr InverseFactorials() {
    double f = 1;
    for (int k = 0; k <= N; ++k) f *= k > 0 ? k : 1, c[k] = 1 / f;
  }
};
template <int N>
inline constexpr InverseFactorials<N> kInverseFactorials{};

/// e^r - 1 for |r| <= 0.5 by its Taylor series to r^N. Truncation: 0.5^(N+1)/(N+1)!, below
/// 2e-20 for N = 16, 1.2e-11 for N = 10.
template <int N>
inline double expm1_small(double r) {
  const auto& c = kInverseFactorials<N>.c;
  double p = c[N];
  for (int k = N - 1; k >= 1; --k) p = p * r + c[k];
  return p * r;
}
}  // namespace detail

/// The Taylor terms for float64 results; float32 (and 16-bit) ones need fewer, N = 10, for a
/// value within 1e-10 before it is rounded.
template <class T>
inline constexpr int kTerms = sizeof(T) >= 8 ? 16 : 10;

/// e^x.
template <int N = 16>
inline double exp(double x) {
  const double xc = x < -746.0 ? -746.0 : x > 710.0 ? 710.0 : x;  // NaN passes
  const double k = detail::round_int(xc * 1.4426950408889634);      // x / ln 2
  constexpr double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
  const double r = (xc - k * ln2_hi) - k * ln2_lo;                   // |r| <= 0.35
  const double k1 = detail::round_int(k * 0.5), k2 = k - k1;         // 2^k in two normal steps
  return (1 + detail::expm1_small<N>(r)) * detail::pow2(k1) * detail::pow2(k2);
}

/// e^x - 1, accurate near 0.
template <int N = 16>
inline double expm1(double x) {
  const double small = detail::expm1_small<N>(x < -0.5 ? -0.5 : x > 0.5 ? 0.5 : x);
  const double large = exp<N>(x) - 1;
  return x > -0.5 && x < 0.5 ? small : x == x ? large : x;
}

/// tanh x = e / (e + 2), e = expm1(2|x|), with the sign of x; 1 beyond |x| = 20. Here
/// e = 2^k expm1(r) + (2^k - 1) with 2|x| = k ln 2 + r, |r| <= 0.35: one series for the whole
/// range (k = 0 near 0 keeps it accurate there; for k >= 1, e >= 0.41 and the sum rounds once).
template <int N = 16>
inline double tanh(double x) {
  const double a = x < 0 ? -x : x, y = 2 * (a > 20.0 ? 20.0 : a);  // NaN passes
  const double k = detail::round_int(y * 1.4426950408889634);       // y / ln 2, 0 to 58
  constexpr double ln2_hi = 0x1.62e42fefa3800p-1, ln2_lo = 0x1.ef35793c76730p-45;
  const double r = (y - k * ln2_hi) - k * ln2_lo, scale = detail::pow2(k);
  const double e = scale * detail::expm1_small<N>(r) + (scale - 1);
  return __builtin_copysign(e / (e + 2), x);  // -0 stays -0
}

}  // namespace gradsim::vmath

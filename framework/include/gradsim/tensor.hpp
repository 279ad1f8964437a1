// The array types plugins compute on, and scalar functions that work in every format.
// Every tensor is (batch x features), column-major, one Eigen matrix: plugins work on whole
// arrays, never one virtual call per element. What plugins compute *with* (products, the
// normal sampler, elementwise maps, statistics) is in compute.hpp and random.hpp, and runs
// inside the gradsim library.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "vmath.hpp"

namespace gradsim {

/// A batch of rows (batch x features) or a weight (fan_in x fan_out, or 1 x fan_out).
template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

/// The floating-point formats the engine is instantiated for.
using bfloat16 = Eigen::bfloat16;
using float16 = Eigen::half;

/// Expands X(T) once for each simulated format.
#define GRADSIM_FOR_EACH_FORMAT(X) X(double) X(float) X(::gradsim::bfloat16) X(::gradsim::float16)

/// A value of any format, in float64 (exact: every format's values are float64 values).
template <class T>
double to_double(T x) {
  if constexpr (std::is_floating_point_v<T>) return double(x);
  else return double(static_cast<float>(x));
}

/// Scalar functions for every format: computed in float64 (exp, expm1, tanh: gradsim's own,
/// vectorisable, see vmath.hpp) or float (the others: the C library's) and rounded to T.
namespace fn {
#define GRADSIM_SCALAR_FN(name, impl)                                            \
  template <class T>                                                             \
  T name(T x) {                                                                  \
    if constexpr (std::is_floating_point_v<T>) return T(impl(x));               \
    else return T(static_cast<float>(impl(static_cast<float>(x))));             \
  }
namespace detail {  // vmath's functions with the Taylor terms T's precision needs
#define GRADSIM_VMATH_FN(name) \
  template <class U>           \
  double name(U x) { return vmath::name<vmath::kTerms<U>>(double(x)); }
GRADSIM_VMATH_FN(exp)
GRADSIM_VMATH_FN(expm1)
GRADSIM_VMATH_FN(tanh)
#undef GRADSIM_VMATH_FN
}  // namespace detail
GRADSIM_SCALAR_FN(exp, detail::exp)
GRADSIM_SCALAR_FN(expm1, detail::expm1)
GRADSIM_SCALAR_FN(tanh, detail::tanh)
GRADSIM_SCALAR_FN(log, std::log)
GRADSIM_SCALAR_FN(log1p, std::log1p)
GRADSIM_SCALAR_FN(erf, std::erf)
GRADSIM_SCALAR_FN(sqrt, std::sqrt)
#undef GRADSIM_SCALAR_FN
}  // namespace fn

/// splitmix64: turns any 64-bit value into a well-mixed one (used to derive seeds).
constexpr std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace gradsim

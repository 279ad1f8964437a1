// The library's own loops over arrays (compiled per instruction-set level, see
// gradsim/simd.hpp). Float64 sums run in a fixed order of eight partial sums, whatever the
// vector width, so norms and statistics are the same on every CPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include <gradsim/tensor.hpp>

namespace gradsim::simd {

/// y[i] = g[i] * k[i].
#define GRADSIM_SIMD_DECLARE(T)                                              \
  void multiply(const T* g, const T* k, T* y, std::size_t n);                \
  double norm(const T* x, std::size_t n);                                    \
  double max_abs(const T* x, std::size_t n);                                 \
  void widen(const Matrix<T>& x, Matrix<float>& y);                          \
  void narrow(const Matrix<float>& x, Matrix<T>& y);                         \
  void scale_round(const double* x, double scale, T* y, std::size_t n);
GRADSIM_FOR_EACH_FORMAT(GRADSIM_SIMD_DECLARE)
#undef GRADSIM_SIMD_DECLARE

/// Standard normal pairs by Box-Muller from a counter-based stream: out[2i], out[2i+1] from
/// the bits mix64(key + 2i) and mix64(key + 2i + 1). n must be even.
void normal_pairs(std::uint64_t key, std::uint64_t first, double* out, std::size_t n);

}  // namespace gradsim::simd

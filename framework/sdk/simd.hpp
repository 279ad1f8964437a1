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
  void scale_round(const double* x, double scale, T* y, std::size_t n);     \
  void add_column_sums(const T* m, std::size_t rows, std::size_t cols, T* out);
GRADSIM_FOR_EACH_FORMAT(GRADSIM_SIMD_DECLARE)
#undef GRADSIM_SIMD_DECLARE

/// out (cols x rows) = a^T of a column-major rows x cols array.
void transpose(const float* a, std::size_t rows, std::size_t cols, float* out);
void transpose(const double* a, std::size_t rows, std::size_t cols, double* out);

/// Standard normal values by the ziggurat method from a counter-based stream: out[i] is value
/// first + i of stream `key`, from the bits mix64(key + first + i) (and, for the 1 % the fast
/// path rejects, a stream keyed by both), so it depends on nothing else.
void normal(std::uint64_t key, std::uint64_t first, double* out, std::size_t n);

}  // namespace gradsim::simd

// The compute plugins share: products, elementwise maps and statistics. Declared here, defined
// once in the gradsim library (libgradsim), so the core decides how they run (kernels, SIMD,
// BLAS) and every plugin gets the same results whatever flags it was built with.
#pragma once

#include <cstddef>

#include "abi.hpp"
#include "tensor.hpp"

namespace gradsim {

/// How matmul combines its operands: c (+)= op(a) op(b), op = transpose or not.
struct Product {
  bool transpose_a = false, transpose_b = false;
  bool accumulate = false;  ///< c += ... instead of c = ...
};

/// An elementwise kernel compiled in a plugin: y[i] = g(x[i]) for i < n, `fn` being the
/// plugin's function object (its parameters).
template <class T>
using ScalarKernel = void (*)(const void* fn, const T* x, T* y, std::size_t n);

/// The same with two inputs: out[i] = g(x[i], y[i]) (an activation's f' from x and y = f(x)).
template <class T>
using PairKernel = void (*)(const void* fn, const T* x, const T* y, T* out, std::size_t n);

#define GRADSIM_DECLARE_COMPUTE(T)                                                                \
  /** c = op(a) op(b), or c += op(a) op(b). float64 and float32: one product in T. bfloat16 and \
      float16: computed and accumulated in float32, rounded to T once (as GPU libraries and     \
      PyTorch do). c is resized unless it accumulates. */                                        \
  GRADSIM_EXPORT void matmul(const Matrix<T>& a, const Matrix<T>& b, Matrix<T>& c, Product how = {}); \
  /** y = k(x) elementwise (y takes x's shape). */                                                \
  GRADSIM_EXPORT void map(const Matrix<T>& x, Matrix<T>& y, ScalarKernel<T> k, const void* fn);   \
  /** y = g * k(x) elementwise: the backward pass of y = f(x) with k = f'. */                    \
  GRADSIM_EXPORT void map_times(const Matrix<T>& x, const Matrix<T>& g, Matrix<T>& y,            \
                                ScalarKernel<T> k, const void* fn);                               \
  /** out = g * k(x, y) elementwise: the backward pass of y = f(x) with k(x, f(x)) = f'(x). */   \
  GRADSIM_EXPORT void map_times(const Matrix<T>& x, const Matrix<T>& y, const Matrix<T>& g,      \
                                Matrix<T>& out, PairKernel<T> k, const void* fn);                 \
  /** out(0, j) += sum_i m(i, j) (a bias's gradient; out: 1 x m.cols()), summed in T in a fixed \
      order (eight partial sums down each column), the same on every CPU. */                     \
  GRADSIM_EXPORT void add_column_sums(const Matrix<T>& m, Matrix<T>& out);                        \
  /** ||m||_F accumulated in float64 whatever T is, so that measuring cannot overflow. */        \
  GRADSIM_EXPORT double norm_f64(const Matrix<T>& m);                                             \
  /** max |m_ij| in float64 (NaN if m holds one; 0 if m is empty). */                             \
  GRADSIM_EXPORT double max_abs_f64(const Matrix<T>& m);
GRADSIM_FOR_EACH_FORMAT(GRADSIM_DECLARE_COMPUTE)
#undef GRADSIM_DECLARE_COMPUTE

/// a (rows >= cols) = Q R, Householder QR in LAPACK: replaces a by Q (orthonormal columns),
/// each column's sign chosen so that R's diagonal is positive (so Q is unique, and Haar
/// distributed for a Gaussian a). Throws std::invalid_argument for rows < cols.
GRADSIM_EXPORT void orthonormalize(Matrix<double>& a);

}  // namespace gradsim

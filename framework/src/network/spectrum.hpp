// Singular values of a product of matrices J_L ... J_1 that stay accurate to relative rounding
// error however far they spread, and the summary of a spectrum the traces store.
//
// In a deep network the smallest singular values of the input-output Jacobian fall far below
// 1e-16 of the largest; an SVD of the assembled float64 product returns rounding noise there.
// GradedProduct keeps the product P = U diag(s) V^T without V (the singular values of J P need
// only U and s) and multiplies one factor at a time:
//
//   J P = (J U) diag(s) V^T,  and the SVD of M = (J U) diag(s) = U' diag(s') W^T gives
//   J P = U' diag(s') (V W)^T.
//
// M is a matrix B D with B = J U as well conditioned as J (U's columns are orthonormal) and D
// diagonal, however graded; LAPACK's dgejsv (Drmac and Veselic's preconditioned Jacobi SVD)
// returns such a matrix's singular values to relative accuracy about eps * cond(B). So each
// singular value of the product is accurate to about (factors) * eps * max cond(J_i),
// relative, whatever its size. Exact zero rows of J (a relu's inactive units) are dropped
// first: they make exact zero singular values, counted as such.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <gradsim/random.hpp>
#include <gradsim/tensor.hpp>

#include "gradsim.pb.h"

namespace gradsim {

class GradedProduct {
 public:
  /// P = the n x n identity.
  explicit GradedProduct(std::size_t n);
  /// P = J P, where J has as many columns as P has rows.
  void apply(const Matrix<double>& j);
  /// The singular values of P, largest first: min(rows, n) of them, exact zeros last; all NaN
  /// once a factor held inf or NaN.
  std::vector<double> values() const;
  /// The singular values of J P, leaving P as it is.
  std::vector<double> values_after(const Matrix<double>& j) const;
  std::size_t rows() const { return std::size_t(u_.rows()); }

 private:
  GradedProduct() = default;
  GradedProduct times(const Matrix<double>& j, bool vectors) const;  // J P; U only if `vectors`
  Matrix<double> u_;       // rows x r, orthonormal columns
  std::vector<double> s_;  // r positive values, largest first, relative to exp(log_scale_)
  double log_scale_ = 0;
  std::size_t n_ = 0;
  bool finite_ = true;
};

/// Fills `out` from the singular values of one Jacobian (all of them, exact zeros included):
/// moments, extremes, spread, quantiles, and the values themselves when there are at most
/// `max_values` of them (max_values < 0: never).
void summarize(std::vector<double> values, std::uint32_t sample, int max_values, v1::Spectrum& out);

/// An estimate of J's spectrum (rows x cols) from products alone, for networks too wide to
/// assemble J: `j(V)` = J V and `jt(U)` = J^T U for blocks of columns. Block Lanczos on J^T J
/// with full reorthogonalisation over a space of about `dim` dimensions started from Gaussian
/// vectors drawn from `rng`; Rayleigh-Ritz gives the Ritz values and their residual bounds
/// (|J^T u - s v|: a true singular value lies within it), and the first block Hutchinson's
/// estimates of tr(J^T J) and tr((J^T J)^2). Fills `out` as Spectrum.method "krylov" says.
using BlockProduct = std::function<Matrix<double>(const Matrix<double>&)>;
void krylov_spectrum(std::size_t rows, std::size_t cols, const BlockProduct& j, const BlockProduct& jt,
                     std::size_t dim, Rng& rng, std::uint32_t sample, v1::Spectrum& out);

/// The probabilities of Spectrum.quantiles.
inline constexpr double kSpectrumQuantiles[] = {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99};

}  // namespace gradsim

// Elementwise helpers of the gated cells, each entry computed in float64 and rounded once to
// the simulated format T.
#pragma once

#include <cmath>

#include <gradsim/gradsim.hpp>

namespace gradsim_cells {

using gradsim::Matrix;

template <class T, class F>
void apply(Matrix<T>& m, F&& f) {
  for (Eigen::Index i = 0; i < m.size(); ++i) m(i) = T(f(gradsim::to_double(m(i))));
}

inline double sigmoid(double v) { return 1 / (1 + std::exp(-v)); }

/// m = sigmoid(m) or tanh(m), in place.
template <class T>
void sigmoid_inplace(Matrix<T>& m) { apply(m, sigmoid); }
template <class T>
void tanh_inplace(Matrix<T>& m) { apply(m, [](double v) { return std::tanh(v); }); }

/// The derivatives from the values: sigmoid' = y (1 - y), tanh' = 1 - y^2; out = g * f'(y).
template <class T>
Matrix<T> times_dsigmoid(const Matrix<T>& g, const Matrix<T>& y) {
  return g.cwiseProduct((y.array() * (T(1) - y.array())).matrix());
}
template <class T>
Matrix<T> times_dtanh(const Matrix<T>& g, const Matrix<T>& y) {
  return g.cwiseProduct((T(1) - y.array().square()).matrix());
}

}  // namespace gradsim_cells

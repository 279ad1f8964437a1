// The compute behind compute.hpp, compiled once in the gradsim library: every plugin's
// products, maps and norms run here, with the flags gradsim was built with.
#include <gradsim/compute.hpp>

#include <algorithm>
#include <cmath>

namespace gradsim {

namespace {

// c (+)= op(a) op(b) in the product's own type P (T, or float32 for the 16-bit formats).
template <class P, class A, class B, class C>
void product(const A& a, const B& b, C& c, Product how) {
  if (how.accumulate) {
    if (how.transpose_a && how.transpose_b) c.noalias() += a.transpose() * b.transpose();
    else if (how.transpose_a) c.noalias() += a.transpose() * b;
    else if (how.transpose_b) c.noalias() += a * b.transpose();
    else c.noalias() += a * b;
  } else {
    if (how.transpose_a && how.transpose_b) c.noalias() = a.transpose() * b.transpose();
    else if (how.transpose_a) c.noalias() = a.transpose() * b;
    else if (how.transpose_b) c.noalias() = a * b.transpose();
    else c.noalias() = a * b;
  }
}

template <class T>
void matmul_impl(const Matrix<T>& a, const Matrix<T>& b, Matrix<T>& c, Product how) {
  if constexpr (std::is_floating_point_v<T>) {
    product<T>(a, b, c, how);
  } else {  // accumulate in float32, round once
    const Matrix<float> af = a.template cast<float>(), bf = b.template cast<float>();
    Matrix<float> p;
    if (how.accumulate) p = c.template cast<float>();
    product<float>(af, bf, p, how);
    c = p.template cast<T>();
  }
}

// Chunks small enough to stay in the first-level cache between the kernel and the multiply.
constexpr std::size_t kChunk = 1024;

template <class T>
void map_impl(const Matrix<T>& x, Matrix<T>& y, ScalarKernel<T> k, const void* fn) {
  y.resize(x.rows(), x.cols());
  k(fn, x.data(), y.data(), std::size_t(x.size()));
}

template <class T>
void map_times_impl(const Matrix<T>& x, const Matrix<T>& g, Matrix<T>& y, ScalarKernel<T> k, const void* fn) {
  y.resize(x.rows(), x.cols());
  const std::size_t n = std::size_t(x.size());
  T buf[kChunk];
  for (std::size_t i = 0; i < n; i += kChunk) {
    const std::size_t m = std::min(kChunk, n - i);
    k(fn, x.data() + i, buf, m);
    for (std::size_t j = 0; j < m; ++j) y.data()[i + j] = g.data()[i + j] * buf[j];
  }
}

template <class T>
double norm_impl(const Matrix<T>& m) {
  if constexpr (std::is_same_v<T, double>) {
    return m.norm();
  } else {
    double s = 0;
    for (Eigen::Index i = 0; i < m.size(); ++i) {
      const double v = to_double(m.data()[i]);
      s += v * v;
    }
    return std::sqrt(s);
  }
}

template <class T>
double max_abs_impl(const Matrix<T>& m) {
  double out = 0;
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    const double v = std::fabs(to_double(m.data()[i]));
    if (std::isnan(v)) return v;
    out = std::max(out, v);
  }
  return out;
}

}  // namespace

#define GRADSIM_DEFINE_COMPUTE(T)                                                                    \
  void matmul(const Matrix<T>& a, const Matrix<T>& b, Matrix<T>& c, Product how) { matmul_impl(a, b, c, how); } \
  void map(const Matrix<T>& x, Matrix<T>& y, ScalarKernel<T> k, const void* fn) { map_impl(x, y, k, fn); } \
  void map_times(const Matrix<T>& x, const Matrix<T>& g, Matrix<T>& y, ScalarKernel<T> k, const void* fn) { \
    map_times_impl(x, g, y, k, fn);                                                                  \
  }                                                                                                  \
  double norm_f64(const Matrix<T>& m) { return norm_impl(m); }                                      \
  double max_abs_f64(const Matrix<T>& m) { return max_abs_impl(m); }
GRADSIM_FOR_EACH_FORMAT(GRADSIM_DEFINE_COMPUTE)

}  // namespace gradsim

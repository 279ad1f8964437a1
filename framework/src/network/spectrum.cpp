#include "network/spectrum.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include <gradsim/compute.hpp>

namespace gradsim {

namespace {

// LAPACK's dgejsv, from the OpenBLAS the SDK library has already loaded (that library loads
// it by path, with one thread; opening it again finds the same copy).
using Dgejsv = void (*)(const char*, const char*, const char*, const char*, const char*, const char*, const int*,
                        const int*, double*, const int*, double*, double*, const int*, double*, const int*, double*,
                        const int*, int*, int*);

Dgejsv dgejsv() {
  static const Dgejsv f = [] {
    void* lib = ::dlopen(GRADSIM_OPENBLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = ::dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    return lib ? reinterpret_cast<Dgejsv>(::dlsym(lib, "dgejsv_")) : nullptr;
  }();
  if (!f)
    throw std::runtime_error("jacobian: the OpenBLAS gradsim loaded has no LAPACK dgejsv; install Debian's "
                             "libopenblas0-pthread (or run scripts/deps.sh)");
  return f;
}

// The singular values of a (m x n, column-major, overwritten) and, for left != nullptr, its
// left singular vectors (m x min(m, n)). Relative accuracy for a = B D and a = D B (JOBA = F
// with row pivoting); full range (JOBR = N).
std::vector<double> svd(Matrix<double>& a, Matrix<double>* left) {
  const bool wide = a.rows() < a.cols();  // dgejsv wants m >= n: a^T's right vectors are a's left ones
  Matrix<double> t;
  if (wide) t = a.transpose();
  Matrix<double>& g = wide ? t : a;
  const int m = int(g.rows()), n = int(g.cols()), one = 1;
  std::vector<double> sva(static_cast<std::size_t>(n)), work(static_cast<std::size_t>(2 * m + 7 * n + 2 * n * n + 64));
  std::vector<int> iwork(static_cast<std::size_t>(m + 3 * n + 8));
  double dummy = 0;
  if (left) left->resize(wide ? n : m, n);
  const bool u = left && !wide, v = left && wide;
  const int lwork = int(work.size());
  int info = 0;
  dgejsv()("F", u ? "U" : "N", v ? "V" : "N", "N", "N", "P", &m, &n, g.data(), &m, sva.data(), u ? left->data() : &dummy,
           u ? &m : &one, v ? left->data() : &dummy, v ? &n : &one, work.data(), &lwork, iwork.data(), &info);
  if (info != 0) throw std::runtime_error("jacobian: LAPACK dgejsv failed (info " + std::to_string(info) + ")");
  for (double& x : sva) x *= work[0] / work[1];
  return sva;
}

}  // namespace

GradedProduct::GradedProduct(std::size_t n)
    : u_(Matrix<double>::Identity(Eigen::Index(n), Eigen::Index(n))), s_(n, 1.0), n_(n) {}

void GradedProduct::apply(const Matrix<double>& j) { *this = times(j, true); }

std::vector<double> GradedProduct::values_after(const Matrix<double>& j) const { return times(j, false).values(); }

GradedProduct GradedProduct::times(const Matrix<double>& j, bool vectors) const {
  if (j.cols() != u_.rows())
    throw std::logic_error("GradedProduct: a factor with " + std::to_string(j.cols()) + " columns after one with " +
                           std::to_string(u_.rows()) + " rows");
  GradedProduct out;
  out.n_ = n_, out.log_scale_ = log_scale_;
  const Eigen::Index m = j.rows();
  out.u_.setZero(m, 0);
  if (!finite_ || !j.allFinite()) {
    out.finite_ = false;
    return out;
  }
  std::vector<Eigen::Index> live;  // rows of J that are not exactly zero
  for (Eigen::Index i = 0; i < m; ++i)
    if ((j.row(i).array() != 0).any()) live.push_back(i);
  if (live.empty() || s_.empty()) return out;  // P = 0
  Matrix<double> jl(Eigen::Index(live.size()), j.cols()), b;
  for (std::size_t a = 0; a < live.size(); ++a) jl.row(Eigen::Index(a)) = j.row(live[a]);
  matmul(jl, u_, b);  // (J U), then its columns scaled by s: M = (J U) diag(s)
  for (Eigen::Index c = 0; c < b.cols(); ++c) b.col(c) *= s_[std::size_t(c)];
  Matrix<double> left;
  std::vector<double> sv = svd(b, vectors ? &left : nullptr);
  std::vector<std::size_t> order(sv.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto x, auto y) { return sv[x] > sv[y]; });
  const double top = sv[order[0]];
  if (!(top > 0)) return out;
  out.log_scale_ += std::log(top);  // kept apart, so that s stays in range over any depth
  for (std::size_t c : order)
    if (sv[c] > 0) out.s_.push_back(sv[c] / top);
  if (vectors) {
    out.u_.setZero(m, Eigen::Index(out.s_.size()));
    for (std::size_t a = 0; a < live.size(); ++a)
      for (std::size_t c = 0; c < out.s_.size(); ++c) out.u_(live[a], Eigen::Index(c)) = left(Eigen::Index(a), Eigen::Index(order[c]));
  } else {
    out.u_.resize(m, 0);  // values() needs the rows only
  }
  return out;
}

std::vector<double> GradedProduct::values() const {
  std::vector<double> v(std::min(std::size_t(u_.rows()), n_), finite_ ? 0.0 : NAN);
  if (!finite_) return v;
  for (std::size_t i = 0; i < s_.size() && i < v.size(); ++i) v[i] = std::exp(std::log(s_[i]) + log_scale_);
  return v;
}

void summarize(std::vector<double> values, std::uint32_t sample, int max_values, v1::Spectrum& out) {
  const std::size_t n = values.size();
  out.set_sample(sample);
  out.set_count(std::uint32_t(n));
  std::sort(values.begin(), values.end(), std::greater<>());
  if (n == 0) return;
  if (max_values >= 0 && n <= std::size_t(max_values))
    for (double s : values) out.add_values(s);
  if (std::any_of(values.begin(), values.end(), [](double s) { return std::isnan(s); })) {
    using Set = void (v1::Spectrum::*)(double);
    for (Set f : {&v1::Spectrum::set_max, &v1::Spectrum::set_min, &v1::Spectrum::set_mean_sq,
                    &v1::Spectrum::set_mean_4, &v1::Spectrum::set_log10_spread, &v1::Spectrum::set_condition,
                    &v1::Spectrum::set_near_one})
      (out.*f)(NAN);
    for (std::size_t q = 0; q < std::size(kSpectrumQuantiles); ++q) out.add_quantiles(NAN);
    return;
  }
  const std::size_t zeros = std::size_t(std::count(values.begin(), values.end(), 0.0));
  out.set_zeros(std::uint32_t(zeros));
  const double top = values.front(), low = zeros < n ? values[n - zeros - 1] : 0.0;
  out.set_max(top), out.set_min(low);
  double s2 = 0, s4 = 0;
  std::size_t near = 0;
  for (double s : values) s2 += s * s, s4 += (s * s) * (s * s), near += s >= 0.1 && s <= 10;
  out.set_mean_sq(s2 / double(n)), out.set_mean_4(s4 / double(n));
  out.set_log10_spread(low > 0 ? std::log10(top) - std::log10(low) : NAN);
  out.set_condition(zeros ? INFINITY : top / low);
  out.set_near_one(double(near) / double(n));
  for (double p : kSpectrumQuantiles) {  // ascending order statistics, interpolated
    const double at = p * double(n - 1);
    const std::size_t i = std::size_t(at);
    const double a = values[n - 1 - i], b = values[n - 1 - std::min(i + 1, n - 1)];
    out.add_quantiles(a + (at - double(i)) * (b - a));
  }
}

}  // namespace gradsim

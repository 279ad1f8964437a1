#include "network/spectrum.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include <Eigen/QR>
#include <Eigen/SVD>

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
  out.set_method("exact");
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

namespace {

// Q: an orthonormal basis of a's columns orthogonal to `basis` (Gram-Schmidt against it twice,
// then QR); columns that were (numerically) in the basis' span are dropped.
Matrix<double> extend_basis(const Matrix<double>& basis, Matrix<double> a) {
  for (int pass = 0; pass < 2 && basis.cols(); ++pass) a -= basis * (basis.transpose() * a);
  Eigen::ColPivHouseholderQR<Matrix<double>> qr(a);
  qr.setThreshold(1e-10);
  const Eigen::Index rank = qr.rank();
  Matrix<double> q = qr.householderQ() * Matrix<double>::Identity(a.rows(), rank);
  for (int pass = 0; pass < 2 && basis.cols(); ++pass) q -= basis * (basis.transpose() * q);
  return Eigen::HouseholderQR<Matrix<double>>(q).householderQ() * Matrix<double>::Identity(q.rows(), rank);
}

double standard_error(const Eigen::VectorXd& v) {
  return v.size() > 1 ? std::sqrt((v.array() - v.mean()).square().sum() / double(v.size() - 1) / double(v.size()))
                      : NAN;
}

}  // namespace

void krylov_spectrum(std::size_t rows, std::size_t cols, const BlockProduct& j, const BlockProduct& jt,
                     std::size_t dim, Rng& rng, std::uint32_t sample, v1::Spectrum& out) {
  const auto n = Eigen::Index(std::min(rows, cols)), in = Eigen::Index(cols);
  const Eigen::Index block = std::min<Eigen::Index>(16, in), space = std::min<Eigen::Index>(Eigen::Index(dim), in);
  out.set_sample(sample), out.set_count(std::uint32_t(n)), out.set_method("krylov");
  // Hutchinson on the Gaussian start: E|J w|^2 = tr(J^T J), E|J^T J w|^2 = tr((J^T J)^2).
  Matrix<double> omega(in, block);
  rng.fill_normal(omega);
  const Matrix<double> y = j(omega), z = jt(y);
  const Eigen::VectorXd t1 = y.colwise().squaredNorm().transpose(), t2 = z.colwise().squaredNorm().transpose();
  out.set_mean_sq(t1.mean() / double(n)), out.set_mean_sq_error(standard_error(t1) / double(n));
  out.set_mean_4(t2.mean() / double(n)), out.set_mean_4_error(standard_error(t2) / double(n));
  // Block Lanczos on J^T J: Q spans omega, (J^T J) omega, ...; JQ and J^T J Q kept beside it.
  Matrix<double> q = extend_basis(Matrix<double>(in, 0), omega), jq = j(q), jtjq = jt(jq);
  Eigen::Index last = 0;  // first column of the newest block
  while (q.cols() < space) {
    Matrix<double> next = extend_basis(q, jtjq.rightCols(q.cols() - last));
    if (next.cols() > space - q.cols()) next.conservativeResize(Eigen::NoChange, space - q.cols());
    if (next.cols() == 0) break;  // the space is invariant: nothing new to add
    const Matrix<double> jn = j(next), jtjn = jt(jn);
    last = q.cols();
    q.conservativeResize(Eigen::NoChange, q.cols() + next.cols()), q.rightCols(next.cols()) = next;
    jq.conservativeResize(Eigen::NoChange, jq.cols() + jn.cols()), jq.rightCols(jn.cols()) = jn;
    jtjq.conservativeResize(Eigen::NoChange, jtjq.cols() + jtjn.cols()), jtjq.rightCols(jtjn.cols()) = jtjn;
  }
  // Rayleigh-Ritz: J Q = U S W^T; Ritz pair (s, u, v = Q w), with J v = s u exactly and
  // J^T u = J^T J Q w / s, so the residual is |J^T J Q w / s - s Q w|.
  Eigen::BDCSVD<Matrix<double>> svd(jq, Eigen::ComputeThinV);
  const Eigen::VectorXd s = svd.singularValues();
  const Matrix<double> qw = q * svd.matrixV(), rw = jtjq * svd.matrixV();
  double low = NAN;
  for (Eigen::Index k = 0; k < s.size(); ++k) {
    out.add_ritz(s(k));
    out.add_ritz_bound(s(k) > 0 ? (rw.col(k) / s(k) - s(k) * qw.col(k)).norm() : INFINITY);
    if (s(k) > 1e-12 * s(0)) low = s(k);
  }
  out.set_max(s.size() ? s(0) : NAN), out.set_min(low);
  out.set_log10_spread(std::log10(out.max()) - std::log10(low));
  out.set_condition(NAN), out.set_near_one(NAN);
}

}  // namespace gradsim

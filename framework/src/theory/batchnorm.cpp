#include "theory/batchnorm.hpp"

#include <cmath>
#include <stdexcept>

#include <gradsim/random.hpp>

namespace gradsim::theory {

namespace {
// Running mean and variance of a Monte Carlo sample.
struct Moments {
  double n = 0, sum = 0, sq = 0;
  void add(double x) { n += 1, sum += x, sq += x * x; }
  double mean() const { return sum / n; }
  double error() const { return std::sqrt(std::max(0.0, sq / n - mean() * mean()) / n); }
};
}  // namespace

Estimate batch_norm_growth(const Phi& phi, std::size_t batch, bool before_activation, double sigma_w2,
                           double sigma_b2, std::size_t samples) {
  if (batch < 4) throw std::invalid_argument("batch norm's theory needs a batch of at least 4");
  const double B = double(batch);
  Rng rng(0x6261746368ULL, before_activation ? 1 : 2);
  constexpr std::size_t kChunk = 4096;
  Matrix<double> w(static_cast<Eigen::Index>(kChunk), static_cast<Eigen::Index>(batch));
  Matrix<double> shift(static_cast<Eigen::Index>(kChunk), 1);
  Eigen::VectorXd y(batch), f(batch), d(batch);
  Moments trace, kernel;  // pre: tr(...) and a per sample; post: the bracket per sample
  for (std::size_t done = 0; done < samples; done += kChunk) {
    rng.fill_normal(w);
    rng.fill_normal(shift, std::sqrt(sigma_b2));
    for (Eigen::Index s = 0; s < w.rows(); ++s) {
      Eigen::VectorXd c = w.row(s).transpose();
      c.array() -= c.mean();  // ~ N(0, P)
      if (before_activation) {
        const Eigen::VectorXd v = c / c.norm();
        y = std::sqrt(B) * v;
        for (Eigen::Index i = 0; i < y.size(); ++i) f(i) = phi.f(y(i)), d(i) = phi.df(y(i));
        const double d2 = d.squaredNorm(), sd = d.sum(), dv = d.dot(v);
        const double d2v2 = (d.array() * d.array() * v.array() * v.array()).sum();
        trace.add(d2 - 2 * d2 / B + sd * sd / (B * B) - (d2v2 - dv * dv / B));
        kernel.add(f.squaredNorm() / B - (f.sum() * f.sum() - f.squaredNorm()) / (B * (B - 1)));
      } else {
        const Eigen::VectorXd h = std::sqrt(sigma_w2 * B / (B - 1)) * c + Eigen::VectorXd::Constant(batch, shift(s, 0));
        for (Eigen::Index i = 0; i < h.size(); ++i) f(i) = phi.f(h(i)), d(i) = phi.df(h(i));
        Eigen::VectorXd pa = f;
        pa.array() -= pa.mean();
        const double r2 = pa.squaredNorm();
        if (r2 == 0) continue;  // a constant feature: batch norm's output is 0, no gradient
        const Eigen::VectorXd u = pa / std::sqrt(r2);
        const double d2 = d.squaredNorm(), sd = d.sum(), du = d.dot(u);
        const double d2u2 = (d.array() * d.array() * u.array() * u.array()).sum();
        const double tr = d2 * (1 - 1 / B) - d2u2, ones = d2 - sd * sd / B - du * du;
        trace.add(B / r2 * (tr - ones / B));
      }
    }
  }
  if (!before_activation)
    return {sigma_w2 / (B - 1) * trace.mean(), sigma_w2 / (B - 1) * trace.error()};
  const double scale = B / ((B - 1) * (B - 3));
  const double value = scale * trace.mean() / kernel.mean();
  const double rel = std::hypot(trace.error() / trace.mean(), kernel.error() / kernel.mean());
  return {value, value * rel};
}

}  // namespace gradsim::theory

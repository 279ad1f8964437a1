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

namespace {
// Samples of one feature's centred batch vector, N(0, P), kChunk at a time, for `body`.
template <class F>
void centred_samples(std::size_t batch, std::uint64_t stream, std::size_t samples, F&& body) {
  constexpr std::size_t kChunk = 4096;
  Rng rng(0x6261746368ULL, stream);
  Matrix<double> w(static_cast<Eigen::Index>(kChunk), static_cast<Eigen::Index>(batch + 1));
  for (std::size_t done = 0; done < samples; done += kChunk) {
    rng.fill_normal(w);
    for (Eigen::Index s = 0; s < w.rows(); ++s) {
      Eigen::VectorXd c = w.row(s).head(Eigen::Index(batch)).transpose();
      c.array() -= c.mean();
      body(c, w(s, Eigen::Index(batch)));  // and an independent N(0, 1) for the batch mean
    }
  }
}
}  // namespace

Estimate batch_norm_step(const Phi& phi, std::size_t batch, bool before_activation, double sigma_w2_next,
                         BatchField h, std::size_t samples) {
  if (batch < 4) throw std::invalid_argument("batch norm's theory needs a batch of at least 4");
  const double B = double(batch);
  Eigen::VectorXd f(batch), d(batch);
  Moments trace;
  if (before_activation) {
    // The norm's output sqrt(B) v does not depend on h's scale; 1/|P h|^2 does, through
    // E[1/chi^2_{B-1}] = 1/(B-3).
    centred_samples(batch, 1, samples, [&](const Eigen::VectorXd& c, double) {
      const Eigen::VectorXd v = c / c.norm();
      for (Eigen::Index i = 0; i < v.size(); ++i) d(i) = phi.df(std::sqrt(B) * v(i));
      const double d2 = d.squaredNorm(), sd = d.sum(), dv = d.dot(v);
      const double d2v2 = (d.array() * d.array() * v.array() * v.array()).sum();
      trace.add(d2 - 2 * d2 / B + sd * sd / (B * B) - (d2v2 - dv * dv / B));
    });
    const double scale = sigma_w2_next * B / ((B - 1) * (B - 3) * h.centred);
    return {scale * trace.mean(), scale * trace.error()};
  }
  centred_samples(batch, 2, samples, [&](const Eigen::VectorXd& c, double g) {
    const Eigen::VectorXd x = std::sqrt(h.centred) * c + Eigen::VectorXd::Constant(batch, std::sqrt(h.mean) * g);
    for (Eigen::Index i = 0; i < x.size(); ++i) f(i) = phi.f(x(i)), d(i) = phi.df(x(i));
    Eigen::VectorXd pa = f;
    pa.array() -= pa.mean();
    const double r2 = pa.squaredNorm();
    if (r2 == 0) return trace.add(0);  // a constant feature: batch norm's output is 0, no gradient
    const Eigen::VectorXd u = pa / std::sqrt(r2);
    const double d2 = d.squaredNorm(), sd = d.sum(), du = d.dot(u);
    const double d2u2 = (d.array() * d.array() * u.array() * u.array()).sum();
    const double tr = d2 * (1 - 1 / B) - d2u2, ones = d2 - sd * sd / B - du * du;
    trace.add(B / r2 * (tr - ones / B));
  });
  return {sigma_w2_next / (B - 1) * trace.mean(), sigma_w2_next / (B - 1) * trace.error()};
}

SphereMoments batch_norm_output_moments(const Phi& phi, std::size_t batch, std::size_t samples) {
  const double B = double(batch);
  Moments sq, mean, cross;
  Eigen::VectorXd f(batch);
  centred_samples(batch, 3, samples, [&](const Eigen::VectorXd& c, double) {
    const Eigen::VectorXd y = std::sqrt(B) / c.norm() * c;
    for (Eigen::Index i = 0; i < y.size(); ++i) f(i) = phi.f(y(i));
    const double s = f.sum(), s2 = f.squaredNorm();  // every row and pair of rows of the sample
    sq.add(s2 / B), mean.add(s / B), cross.add((s * s - s2) / (B * (B - 1)));
  });
  return {sq.mean(), mean.mean(), cross.mean()};
}

Estimate batch_norm_growth(const Phi& phi, std::size_t batch, bool before_activation, double sigma_w2,
                           double sigma_b2, std::size_t samples) {
  const double B = double(batch);
  if (!before_activation)  // h = W z + b, z the norm's output: |z|^2 = B with batch mean 0
    return batch_norm_step(phi, batch, false, sigma_w2, {sigma_w2 * B / (B - 1), sigma_b2}, samples);
  // h = W phi(z) + b: its centred variance is sigma_w2 (E[phi^2] - E[phi_1 phi_2]).
  const auto m = batch_norm_output_moments(phi, batch, samples);
  const Estimate step = batch_norm_step(phi, batch, true, sigma_w2, {sigma_w2 * (m.sq - m.cross), 0}, samples);
  return step;
}

}  // namespace gradsim::theory

// GradedProduct: singular values of long products, accurate where an SVD of the assembled
// product is not; and the summary of a spectrum.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include <Eigen/QR>
#include <Eigen/SVD>

#include "network/spectrum.hpp"

namespace gradsim {
namespace {

Matrix<double> random_orthogonal(Eigen::Index n, std::mt19937_64& rng) {
  std::normal_distribution<double> z;
  Matrix<double> g(n, n);
  for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = z(rng);
  return Eigen::HouseholderQR<Matrix<double>>(g).householderQ();
}

// W_l = O_l diag(d) O_{l-1}^T: the product W_L ... W_1 = O_L diag(d^L) O_0^T, whose singular
// values are exactly d_i^L. With d from 1/2 to 2 over 60 factors they span 2^60 to 2^-60, a
// ratio of 1.3e36. An SVD of the assembled float64 product resolves values down to about
// 1e-16 of the largest only: it gets the small half wrong; the graded product gets every one
// to 1e-10 relative (each factor has condition 4, so about 60 * 4 * eps is expected).
TEST(GradedProduct, SmallSingularValuesOfALongProductAreAccurate) {
  const Eigen::Index n = 24;
  const int depth = 60;
  std::mt19937_64 rng(5);
  Eigen::VectorXd d(n);
  for (Eigen::Index i = 0; i < n; ++i) d(i) = std::pow(2.0, 1.0 - 2.0 * double(i) / double(n - 1));
  Matrix<double> o = random_orthogonal(n, rng), assembled = o.transpose();
  GradedProduct product{std::size_t(n)};
  product.apply(o.transpose());  // O_0^T: the chain starts in O_0's frame
  for (int l = 0; l < depth; ++l) {
    const Matrix<double> next = random_orthogonal(n, rng);
    const Matrix<double> w = next * d.asDiagonal() * o.transpose();
    product.apply(w);
    assembled = w * assembled;
    o = next;
  }
  const auto values = product.values();
  ASSERT_EQ(values.size(), std::size_t(n));
  const Eigen::VectorXd naive = Eigen::JacobiSVD<Matrix<double>>(assembled).singularValues();
  double worst_naive = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const double exact = std::pow(d(i), depth);
    EXPECT_NEAR(values[std::size_t(i)] / exact, 1.0, 1e-10) << "singular value " << i;
    worst_naive = std::max(worst_naive, std::fabs(naive(i) / exact - 1));
  }
  EXPECT_GT(worst_naive, 1.0) << "the case must be one an assembled SVD gets wrong";
}

// Exact zero rows (a relu's inactive units) make exact zeros; a product is only as wide as its
// narrowest factor; values_after leaves the product as it was.
TEST(GradedProduct, CountsExactZerosAndKeepsRectangularShapes) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> z;
  auto gaussian = [&](Eigen::Index r, Eigen::Index c) {
    Matrix<double> m(r, c);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = z(rng);
    return m;
  };
  GradedProduct product(10);
  Matrix<double> first = gaussian(8, 10);
  first.row(2).setZero(), first.row(5).setZero();  // rank 6
  product.apply(first);
  const Matrix<double> second = gaussian(12, 8);
  const auto peek = product.values_after(second);
  EXPECT_EQ(product.rows(), 8u);
  product.apply(second);
  const auto values = product.values();
  ASSERT_EQ(values.size(), 10u);  // min(12, 10)
  EXPECT_EQ(peek, values);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_GT(values[i], 0) << i;
  for (std::size_t i = 6; i < 10; ++i) EXPECT_EQ(values[i], 0) << i;
  // Against the assembled product, which is accurate here (no spread to speak of).
  const Eigen::VectorXd direct = Eigen::JacobiSVD<Matrix<double>>(second * first).singularValues();
  for (std::size_t i = 0; i < 6; ++i) EXPECT_NEAR(values[i] / direct(Eigen::Index(i)), 1.0, 1e-12) << i;

  Matrix<double> broken = gaussian(4, 12);
  broken(1, 1) = INFINITY;
  product.apply(broken);
  for (double v : product.values()) EXPECT_TRUE(std::isnan(v));
}

TEST(Spectrum, SummaryOfKnownValues) {
  // 0, 0.05, 0.5, 1, 2, 4, 20, 0 (two exact zeros), eight in all.
  v1::Spectrum s;
  summarize({0.5, 0, 20, 1, 0.05, 2, 4, 0}, 3, 8, s);
  EXPECT_EQ(s.sample(), 3u);
  EXPECT_EQ(s.count(), 8u);
  EXPECT_EQ(s.zeros(), 2u);
  ASSERT_EQ(s.values_size(), 8);
  EXPECT_EQ(s.values(0), 20);
  EXPECT_EQ(s.values(7), 0);
  EXPECT_EQ(s.max(), 20);
  EXPECT_EQ(s.min(), 0.05);
  EXPECT_DOUBLE_EQ(s.log10_spread(), std::log10(400.0));
  EXPECT_EQ(s.condition(), INFINITY);
  EXPECT_DOUBLE_EQ(s.mean_sq(), (0.0025 + 0.25 + 1 + 4 + 16 + 400) / 8);
  EXPECT_DOUBLE_EQ(s.mean_4(), (0.0025 * 0.0025 + 0.0625 + 1 + 16 + 256 + 160000) / 8);
  EXPECT_DOUBLE_EQ(s.near_one(), 4.0 / 8);  // 0.5, 1, 2, 4
  ASSERT_EQ(s.quantiles_size(), 7);
  // Ascending: 0 0 0.05 0.5 1 2 4 20; the median sits halfway between 0.5 and 1.
  EXPECT_DOUBLE_EQ(s.quantiles(3), 0.75);
  EXPECT_DOUBLE_EQ(s.quantiles(0), 0.0);
  EXPECT_DOUBLE_EQ(s.quantiles(6), 4 + 0.93 * 16);  // at 0.99 * 7 = 6.93

  v1::Spectrum few;
  summarize({1, 2, 3}, 0, 2, few);  // more values than max_values: the summary only
  EXPECT_EQ(few.values_size(), 0);
  EXPECT_EQ(few.condition(), 3);
}

}  // namespace
}  // namespace gradsim

namespace gradsim {
namespace {

// A 300 x 400 J with known singular values 10^(1 - 3 i / 299) (10 down to 0.01), applied
// only through products, as the engine applies a wide network.
TEST(KrylovSpectrum, FindsTheLargestSingularValuesWithHonestBoundsAndUnbiasedMoments) {
  std::mt19937_64 gen(3);
  const Eigen::Index rows = 300, cols = 400;
  Eigen::VectorXd sv(rows);
  for (Eigen::Index i = 0; i < rows; ++i) sv(i) = std::pow(10.0, 1 - 3.0 * double(i) / double(rows - 1));
  const Matrix<double> u = random_orthogonal(rows, gen), v = random_orthogonal(cols, gen).leftCols(rows);
  const Matrix<double> j = u * sv.asDiagonal() * v.transpose();
  int products = 0;
  auto apply = [&](const Matrix<double>& x) { return ++products, Matrix<double>(j * x); };
  auto apply_t = [&](const Matrix<double>& x) { return ++products, Matrix<double>(j.transpose() * x); };
  Rng rng(1, 2);
  v1::Spectrum s;
  krylov_spectrum(std::size_t(rows), std::size_t(cols), apply, apply_t, 96, rng, 0, s);
  EXPECT_EQ(s.method(), "krylov");
  EXPECT_EQ(s.count(), 300u);
  ASSERT_EQ(s.ritz_size(), 96);
  EXPECT_LE(products, 2 * 96 / 16 + 2);  // one J and one J^T per block of 16, and the start's
  for (int k = 0; k < 5; ++k) EXPECT_NEAR(s.ritz(k) / sv(k), 1.0, 1e-8) << k;
  for (int k = 0; k < s.ritz_size(); ++k) {  // every bound holds
    const double nearest = (sv.array() - s.ritz(k)).abs().minCoeff();
    EXPECT_LE(nearest, s.ritz_bound(k) * (1 + 1e-6) + 1e-12) << k;
  }
  EXPECT_GE(s.min(), sv(rows - 1));
  EXPECT_DOUBLE_EQ(s.max(), s.ritz(0));
  const double m2 = sv.array().square().mean(), m4 = sv.array().pow(4).mean();
  EXPECT_NEAR(s.mean_sq(), m2, 4 * s.mean_sq_error());
  EXPECT_NEAR(s.mean_4(), m4, 4 * s.mean_4_error());
  EXPECT_LT(s.mean_sq_error(), 0.5 * m2);
  EXPECT_TRUE(std::isnan(s.near_one()));
}

}  // namespace
}  // namespace gradsim

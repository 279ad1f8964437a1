// Jacobian spectra of whole networks: exact cases, free probability, Lyapunov exponents, every
// arrangement of blocks against finite differences, formats, refusals, and the shipped
// isometry spec.
#include <gmock/gmock.h>

#include <cmath>

#include <Eigen/SVD>
#include <boost/math/special_functions/digamma.hpp>
#include <boost/math/special_functions/trigamma.hpp>

#include "error.hpp"
#include "network/engine.hpp"
#include "run_sims.hpp"

namespace gradsim {
namespace {

using ::testing::HasSubstr;
using test::by_label, test::run_sim, test::run_text;

v1::SimSpec resolved(const std::string& text) {
  auto sim = sim_at(parse_spec(text, "j.textproto").sweep, 0);
  resolve(sim, test::builtins());
  return sim;
}

// A linear network with orthogonal weights of gain g is g^L times an orthogonal map: every
// singular value is g^L, and after block i, g^(i+1).
TEST(Jacobian, OrthogonalLinearNetworkHasEverySingularValueGToTheL) {
  const auto ts = run_text(R"(
    base { network { depth: 30 width: 48 activation { name: "linear" } } batch: 4
           init { name: "orthogonal" params { name: "gain" number: 0.8 } }
           jacobian { samples: 3 per_block: true } })");
  ASSERT_EQ(ts.size(), 1u);
  const auto& t = ts[0];
  ASSERT_EQ(t.jacobian_size(), 3);
  for (const auto& sp : t.jacobian()) {
    ASSERT_EQ(sp.values_size(), 48);
    for (double s : sp.values()) EXPECT_NEAR(s / std::pow(0.8, 30), 1.0, 1e-10);
    EXPECT_NEAR(sp.log10_spread(), 0.0, 1e-10);
  }
  for (const auto& l : t.layers()) {
    ASSERT_EQ(l.jacobian_size(), 3);
    for (double s : l.jacobian(2).values()) EXPECT_NEAR(s / std::pow(0.8, l.index() + 1), 1.0, 1e-10);
  }
}
}  // namespace
}  // namespace gradsim

namespace gradsim {
namespace {

// The moments of J J^T for J a product of L square Gaussian matrices with entries N(0, 1/n):
// E tr(J J^T) / n = 1 exactly, and E tr((J J^T)^2) / n by Wick's theorem: with S_l = J_l J_l^T,
// x_l = E tr(S_l^2) and y_l = E (tr S_l)^2 obey x_{l+1} = (1 + 1/n) x_l + y_l / n and
// y_{l+1} = y_l + 2 x_l / n from x_0 = n, y_0 = n^2. As n grows, x_L / n -> L + 1, the
// second Fuss-Catalan number (free probability: Pennington et al. 2017).
double second_moment(int depth, double n) {
  double x = n, y = n * n;
  for (int l = 0; l < depth; ++l) {
    const double x1 = (1 + 1 / n) * x + y / n, y1 = y + 2 * x / n;
    x = x1, y = y1;
  }
  return x / n;
}

// 48 replicas at width 64 for depths 2 and 6. The tolerance is 4 standard errors of the mean
// over replicas (measured); it must exclude the moment L (a product of L independent
// commuting factors would not spread) and 2^L (second moments multiplied layer by layer).
TEST(Jacobian, GaussianLinearNetworkFollowsFussCatalan) {
  for (int depth : {2, 6}) {
    const auto ts = run_text(R"(
      base { network { depth: )" + std::to_string(depth) + R"( width: 64 activation { name: "linear" } } batch: 2
             jacobian { samples: 1 } }
      replicas: 48)");
    double m1 = 0, m2 = 0, m2_sq = 0;
    for (const auto& t : ts) {
      m1 += t.jacobian(0).mean_sq() / double(ts.size());
      m2 += t.jacobian(0).mean_4() / double(ts.size());
      m2_sq += std::pow(t.jacobian(0).mean_4(), 2) / double(ts.size());
    }
    const double se = std::sqrt((m2_sq - m2 * m2) / double(ts.size() - 1)), exact = second_moment(depth, 64);
    EXPECT_NEAR(exact, depth + 1, 0.15 * depth) << "finite-width correction";
    EXPECT_NEAR(m2, exact, 4 * se) << "depth " << depth;
    EXPECT_LT(4 * se, std::min(exact - depth, std::pow(2.0, depth) - exact)) << "depth " << depth;
    EXPECT_NEAR(m1, 1.0, 0.05) << "depth " << depth;
    std::printf("depth %d: E[s^4] %.4f +- %.4f, exact %.4f, Fuss-Catalan %d; E[s^2] %.4f\n", depth, m2, se, exact,
                depth + 1, m1);
  }
}

// The smallest singular value of a deep product of square Gaussian matrices: log s_min / L ->
// the smallest Lyapunov exponent, lambda_n = (psi(1/2) + ln(2/n)) / 2 for entries N(0, 1/n)
// (Newman 1986; psi the digamma function), and log s_(n/2) / L -> (psi((n/2+1)/2) + ln(2/n)) / 2.
// At width 32 and depth 200 the smallest is about e^(-2.37 * 200) = 1e-206 and the largest about
// 1: an SVD of the assembled product would stop at 1e-16. log s_i is a sum of L independent terms of variance
// psi'((n-i+1)/2) / 4 (nats^2); the tolerance is 4 standard errors of the mean of 8 replicas, plus
// 2/L for the O(1) offset of a finite product.
TEST(Jacobian, SmallestSingularValueOfADeepGaussianProductFollowsItsLyapunovExponent) {
  const int depth = 200, n = 32, replicas = 8;
  const auto ts = run_text(R"(
    base { network { depth: 200 width: 32 activation { name: "linear" } } batch: 2 jacobian { samples: 1 } }
    replicas: 8)");
  for (int i : {n, n / 2}) {
    const double k = (n - i + 1) / 2.0;
    const double lambda = (boost::math::digamma(k) + std::log(2.0 / n)) / 2;
    const double sd = std::sqrt(boost::math::trigamma(k) / 4 * depth) / depth / std::sqrt(double(replicas));
    double measured = 0;
    for (const auto& t : ts) {
      ASSERT_EQ(t.jacobian(0).values_size(), n);
      measured += std::log(t.jacobian(0).values(i - 1)) / depth / replicas;
    }
    EXPECT_NEAR(measured, lambda, 4 * sd + 2.0 / depth) << "singular value " << i;
    std::printf("s_%d: log s / L = %.4f, Lyapunov %.4f (+- %.4f)\n", i, measured, lambda, sd);
  }
  EXPECT_GT(ts[0].jacobian(0).log10_spread(), 150);
}

}  // namespace
}  // namespace gradsim

namespace gradsim {
namespace {

// dy/dx of one row by central differences of whole forward passes (float64, h = 1e-5: error
// about h^2 + eps/h, 1e-10 of the largest singular value), against the pieces' product.
void expect_matches_finite_differences(const std::string& network) {
  SCOPED_TRACE(network);
  const auto sim = resolved("base { " + network + " batch: 3 jacobian { samples: 2 } }");
  Engine<double> engine(sim, test::builtins());
  engine.forward();
  const auto spectra = engine.jacobian();
  ASSERT_EQ(spectra.network.size(), 2u);
  const Eigen::Index row = 1, in = engine.input().cols(), out = engine.output().cols();
  Matrix<double> j(out, in);
  const double h = 1e-5;
  for (Eigen::Index k = 0; k < in; ++k) {
    const double x = engine.input()(row, k);
    engine.input()(row, k) = x + h;
    engine.forward();
    const Matrix<double> up = engine.output().row(row);
    engine.input()(row, k) = x - h;
    engine.forward();
    j.col(k) = (up - engine.output().row(row)).transpose() / (2 * h);
    engine.input()(row, k) = x;
  }
  const Eigen::VectorXd expected = Eigen::JacobiSVD<Matrix<double>>(j).singularValues();
  const auto& got = spectra.network[1];
  ASSERT_EQ(got.values_size(), expected.size());
  for (Eigen::Index i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(got.values(int(i)), expected(i), 1e-7 * expected(0)) << "singular value " << i;
}

TEST(Jacobian, EveryArrangementOfBlocksMatchesFiniteDifferences) {
  const std::string tanh = R"(network { depth: 4 width: 7 input_width: 5 activation { name: "tanh" } })";
  expect_matches_finite_differences(tanh);
  expect_matches_finite_differences(R"(network { depth: 3 width: 6 activation { name: "gelu" } linear_readout: true })");
  expect_matches_finite_differences(R"(network { depth: 5 width: 6 tie_weights: true activation { name: "softmax" } })");
  // Residual segments of two blocks (cut only between segments), a projection where the width
  // changes, pre-norm and post-norm, the activation first.
  expect_matches_finite_differences(tanh + R"( mitigations { name: "residual" params { name: "span" number: 2 } })");
  expect_matches_finite_differences(R"(network { depth: 5 width: 6 activation { name: "relu" } activation_first: true }
    mitigations { name: "residual" params { name: "alpha" number: 0.5 } }
    mitigations { name: "layer_norm" params { name: "placement" text: "residual_pre" } })");
  expect_matches_finite_differences(tanh + R"( mitigations { name: "rms_norm" params { name: "placement" text: "residual_post" } }
    mitigations { name: "residual" params { name: "span" number: 3 } })");
}

// relu switches units off: their rows of the Jacobian are exact zeros, and so are as many
// singular values as the narrowest layer has inactive units (at least).
TEST(Jacobian, ReluCountsExactZeros) {
  const auto ts = run_text(R"(
    base { network { depth: 6 width: 40 activation { name: "relu" } } init { name: "he" } batch: 4
           jacobian { samples: 4 per_block: true } })");
  for (const auto& sp : ts[0].jacobian()) {
    EXPECT_GT(sp.zeros(), 10u);
    EXPECT_LT(sp.zeros(), 30u);
    EXPECT_GT(sp.min(), 0);
    EXPECT_TRUE(std::isfinite(sp.log10_spread()));
    EXPECT_EQ(sp.condition(), INFINITY);
  }
  for (int i = 1; i < ts[0].layers_size(); ++i)  // the rank never grows along the network
    EXPECT_GE(ts[0].layers(i).jacobian(0).zeros(), ts[0].layers(i - 1).jacobian(0).zeros());
}

// Each format's pieces, from its own values: float32 keeps an orthogonal network's spectrum to
// its rounding, bfloat16 (8 bits) spreads it by its rounding of the weights. The product is
// taken in float64: a linear float16 network whose forward pass overflows still has the
// Jacobian W^L (4^12 here, beyond float16's range), while a layer norm of the overflowed
// values has none (NaN, recorded, not a failure).
TEST(Jacobian, EveryFormatFromItsOwnValues) {
  const auto ts = run_text(R"(
    base { network { depth: 20 width: 32 activation { name: "tanh" } } batch: 2
           init { name: "orthogonal" } jacobian { samples: 1 } input { variance: 0.01 } }
    axis { path: "dtype" texts: ["FLOAT64", "FLOAT32", "BFLOAT16", "FLOAT16"] })");
  ASSERT_EQ(ts.size(), 4u);
  const auto& f64 = ts[0].jacobian(0);
  EXPECT_NEAR(ts[1].jacobian(0).max() / f64.max(), 1.0, 1e-5);
  EXPECT_NEAR(ts[1].jacobian(0).min() / f64.min(), 1.0, 1e-5);
  EXPECT_NEAR(ts[2].jacobian(0).max() / f64.max(), 1.0, 0.05);
  EXPECT_GT(std::fabs(ts[2].jacobian(0).max() / f64.max() - 1), 1e-4);
  EXPECT_NEAR(ts[3].jacobian(0).max() / f64.max(), 1.0, 0.02);

  const auto over = run_text(R"(
    base { network { depth: 12 width: 16 activation { name: "linear" } } batch: 2 dtype: FLOAT16
           init { name: "orthogonal" params { name: "gain" number: 4 } } input { variance: 1e9 } jacobian { samples: 1 }
           mitigations { name: "" params { name: "placement" text: "post_activation" } } }
    axis { path: "mitigations[0].name" texts: ["", "layer_norm"] })");
  ASSERT_EQ(over.size(), 2u);
  EXPECT_TRUE(over[0].has_forward_overflow_layer());
  EXPECT_NEAR(over[0].jacobian(0).max() / std::pow(4.0, 12), 1.0, 0.01);
  EXPECT_TRUE(over[1].has_forward_overflow_layer());
  EXPECT_TRUE(std::isnan(over[1].jacobian(0).max()));
}

// A plugin layer that mixes rows but does not declare it passes validation; its simulation
// fails when a row run alone comes out differently, with a message that names the layer.
TEST(Jacobian, CatchesAnUndeclaredRowMixingLayer) {
  auto sim = sim_at(parse_spec(R"(base { network { depth: 2 width: 4 layer { name: "batch_centre" } } batch: 4
                                        jacobian { samples: 1 } })", "j.textproto").sweep, 0);
  resolve(sim, test::with_fixtures());
  check_buildable(sim, test::with_fixtures());  // not refused: the layer does not say it mixes rows
  v1::SimTrace t;
  simulate(sim, test::with_fixtures(), t);
  EXPECT_EQ(t.status(), v1::SimTrace::FAILED);
  EXPECT_THAT(t.message(), HasSubstr("one of the layers (\"batch_centre\""));
  EXPECT_THAT(t.message(), HasSubstr("mixes the rows of a batch"));
  EXPECT_THAT(t.message(), HasSubstr("Layer::mixes_rows"));
}

TEST(Jacobian, RefusesBatchNormAndBadFields) {
  auto error_of = [](const std::string& text) {
    try {
      validate(parse_spec(text, "j.textproto"), test::builtins());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(error_of(R"(base { network { depth: 3 width: 4 } mitigations { name: "batch_norm" } jacobian { samples: 1 } })"),
              HasSubstr("layer \"batch_norm\" of block 0 mixes the rows of a batch"));
  EXPECT_THAT(error_of(R"(base { network { depth: 3 width: 4 } batch: 4 jacobian { samples: 5 } })"),
              HasSubstr("jacobian.samples = 5 input rows, but the batch has 4"));
  EXPECT_THAT(error_of(R"(base { network { depth: 3 width: 4 } jacobian { per_block: true } })"),
              HasSubstr("jacobian.per_block needs jacobian.samples >= 1"));
}

}  // namespace
}  // namespace gradsim

namespace gradsim {
namespace {

// sims/isometry.textproto: tanh at its critical point with small q* (orthogonal and Gaussian
// weights) and relu with He's weights, depths 8 to 128, width 128; 2 replicas x 2 input rows.
TEST(Jacobian, ShippedIsometrySpecShowsWhatThePaperReports) {
  const auto ts = run_sim("isometry.textproto");
  ASSERT_EQ(ts.size(), 30u);
  struct Cell {
    std::vector<double> spread, near;
    std::uint32_t zeros = 1000;
  };
  std::map<std::string, std::map<std::uint32_t, Cell>> nets;  // "tanh orthogonal" -> depth -> cell
  for (const auto& t : ts) {
    auto& c = nets[t.spec().network().activation().name() + " " + t.spec().init().name()][t.spec().network().depth()];
    for (const auto& sp : t.jacobian())
      c.spread.push_back(sp.log10_spread()), c.near.push_back(sp.near_one()), c.zeros = std::min(c.zeros, sp.zeros());
  }
  ASSERT_EQ(nets.size(), 3u);
  auto spread = [&](const std::string& net, std::uint32_t depth) { return median(nets[net][depth].spread); };
  auto near = [&](const std::string& net, std::uint32_t depth) { return median(nets[net][depth].near); };
  const std::vector<std::uint32_t> depths{8, 16, 32, 64, 128};
  for (std::size_t k = 0; k < depths.size(); ++k) {
    const auto d = depths[k];
    // Orthogonal tanh: the bulk stays within a factor 10 of 1 at every depth, and its spread is
    // a fraction of the Gaussian network's.
    EXPECT_GE(near("tanh orthogonal", d), 0.95) << d;
    EXPECT_LT(spread("tanh orthogonal", d), spread("tanh gaussian", d) / 10) << d;
    // relu: over half of the singular values are exactly 0 (inactive units).
    EXPECT_GE(nets["relu gaussian"][d].zeros, 64u) << d;
    if (k == 0) continue;
    // Gaussian tanh and relu spread further with every doubling of depth, and fewer of their
    // singular values stay near 1.
    for (const std::string net : {"tanh gaussian", "relu gaussian"}) {
      EXPECT_GT(spread(net, d), 1.5 * spread(net, depths[k - 1])) << net << " " << d;
      EXPECT_LT(near(net, d), near(net, depths[k - 1])) << net << " " << d;
    }
  }
  // Gaussian tanh near linear (q* = 0.046): the spread grows at the gap between the largest and
  // the smallest Lyapunov exponent of products of 128 x 128 Gaussian matrices,
  // (psi(64) - psi(1/2)) / (2 ln 10) = 1.328 decades per layer. Tolerance 10 % (0.13): the
  // smallest singular value's log has a standard deviation of sqrt(96 psi'(1/2) / 4) / ln 10
  // = 4.7 decades over 96 layers, 0.05 per layer for one input row (about 0.03 for the median
  // of 4), plus tanh's own share (the orthogonal network's rate, 0.04). The orthogonal network
  // spreads 30 times slower.
  const double gap = (boost::math::digamma(64.0) - boost::math::digamma(0.5)) / (2 * std::log(10.0));
  const double gaussian = (spread("tanh gaussian", 128) - spread("tanh gaussian", 32)) / 96;
  const double orthogonal = (spread("tanh orthogonal", 128) - spread("tanh orthogonal", 32)) / 96;
  EXPECT_NEAR(gaussian, gap, 0.1 * gap);
  EXPECT_LT(orthogonal, gap / 20);
  std::printf("spread per layer: gaussian %.3f (Lyapunov gap %.3f), orthogonal %.3f\n", gaussian, gap, orthogonal);
}

}  // namespace
}  // namespace gradsim

namespace gradsim {
namespace {

// Above jacobian.exact_width the spectrum is estimated from forward- and backward-mode
// products (Krylov). The same pre-norm residual tanh network, width 96, both ways: each of the
// three largest Ritz values lies within its stated bound r (the residual norm) of an exact
// singular value, and within r^2 / gap, the quadratic bound for a Ritz value whose nearest
// singular value is `gap` away from the others (Kahan-Parlett-Jiang; the gap taken from the
// exact spectrum); the smallest Ritz value is at least the smallest singular value; the
// moments lie within 4 of their standard errors.
TEST(Jacobian, KrylovEstimateAgreesWithTheExactSpectrumWithinItsBounds) {
  const auto ts = run_text(R"(
    base { network { depth: 12 width: 96 activation { name: "tanh" } } batch: 3
           init { name: "gaussian" params { name: "bias_std" number: 0.1 } }
           jacobian { samples: 3 krylov_dim: 48 }
           mitigations { name: "residual" params { name: "alpha" number: 0.5 } }
           mitigations { name: "layer_norm" params { name: "placement" text: "residual_pre" } } }
    axis { path: "jacobian.exact_width" numbers: [2048, 64] })");
  ASSERT_EQ(ts.size(), 2u);
  for (int r = 0; r < 3; ++r) {
    const auto &exact = ts[0].jacobian(r), &estimate = ts[1].jacobian(r);
    ASSERT_EQ(exact.method(), "exact");
    ASSERT_EQ(estimate.method(), "krylov");
    ASSERT_EQ(estimate.ritz_size(), 48);
    for (int k = 0; k < 3; ++k) {
      const double ritz = estimate.ritz(k), bound = estimate.ritz_bound(k);
      int nearest = 0;
      for (int i = 0; i < exact.values_size(); ++i)
        if (std::fabs(exact.values(i) - ritz) < std::fabs(exact.values(nearest) - ritz)) nearest = i;
      double gap = INFINITY;
      for (int i = 0; i < exact.values_size(); ++i)
        if (i != nearest) gap = std::min(gap, std::fabs(exact.values(i) - ritz));
      const double error = std::fabs(exact.values(nearest) - ritz);
      EXPECT_LE(error, bound) << r << " " << k;
      EXPECT_LE(error, bound * bound / gap * (1 + 1e-6) + 1e-12) << r << " " << k;
      EXPECT_LT(bound, 0.1 * ritz) << r << " " << k;
    }
    EXPECT_GE(estimate.min(), exact.min() * (1 - 1e-9));
    EXPECT_NEAR(estimate.mean_sq(), exact.mean_sq(), 4 * estimate.mean_sq_error()) << r;
    EXPECT_NEAR(estimate.mean_4(), exact.mean_4(), 4 * estimate.mean_4_error()) << r;
  }
}

// Forward mode is a plugin's to give: a wide network with a layer that has none fails its
// simulation and says which layer and what to do.
TEST(Jacobian, KrylovEstimateNeedsForwardModeFromEveryLayer) {
  auto sim = sim_at(parse_spec(R"(base { network { depth: 3 width: 8 layer { name: "stateful" } } batch: 2
                                        jacobian { samples: 1 exact_width: 4 } })", "j.textproto").sweep, 0);
  resolve(sim, test::with_fixtures());
  v1::SimTrace t;
  simulate(sim, test::with_fixtures(), t);
  EXPECT_EQ(t.status(), v1::SimTrace::FAILED);
  EXPECT_THAT(t.message(), HasSubstr("layer \"stateful\" has no forward mode (Layer::tangent)"));
}

}  // namespace
}  // namespace gradsim

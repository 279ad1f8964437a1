// The engine: whole-network gradients against finite differences, the mitigation hooks, the
// number formats, determinism, and failures recorded as data.
#include <gmock/gmock.h>

#include <cfloat>
#include <random>

#include "simulate.hpp"
#include "check/gradcheck.hpp"
#include "network/engine.hpp"
#include "error.hpp"
#include "run/validate.hpp"
#include "spec/spec.hpp"

namespace gradsim {
namespace {

using test::resolved;
v1::SimTrace run(const v1::SimSpec& sim, const Registry& r = test::builtins()) { return test::simulated(sim, r); }

// The vectorised statistics against a plain long double pass, for every length modulo the 8
// lanes and the 256-value blocks, with zeros and float32 subnormals in; counts, extremes exact,
// sums to 1e-13 relative. With a NaN or an infinity, the exact pass counts them.
TEST(Stats, VectorisedStatisticsAgreeWithAPlainPass) {
  std::mt19937_64 gen(3);
  std::normal_distribution<float> normal(0.5f, 2);
  for (int n : {1, 5, 8, 13, 255, 256, 257, 263, 1000, 4099}) {
    Matrix<float> m(n, 1);
    for (int i = 0; i < n; ++i) m(i) = i % 7 == 3 ? 0.0f : i % 11 == 5 ? 1e-40f : normal(gen);
    long double sum = 0, sumsq = 0;
    std::uint64_t zeros = 0, sub = 0;
    double hi = 0, lo = INFINITY;
    for (int i = 0; i < n; ++i) {
      const double v = m(i), a = std::fabs(v);
      sum += v, sumsq += (long double)v * v, zeros += a == 0, sub += a > 0 && a < FLT_MIN;
      hi = std::max(hi, a);
      if (a > 0) lo = std::min(lo, a);
    }
    const Stats s = stats_of(m);
    v1::TensorStats p;
    s.to_proto(p);
    const long double mean = sum / n, var = sumsq / n - mean * mean;
    EXPECT_EQ(s.count, std::uint64_t(n));
    EXPECT_EQ(s.zeros, zeros) << n;
    EXPECT_EQ(s.subnormal, sub) << n;
    EXPECT_EQ(s.max_abs, hi) << n;
    EXPECT_EQ(s.min_abs_nonzero, lo == INFINITY ? 0 : lo) << n;
    EXPECT_NEAR(s.norm(), double(std::sqrt(sumsq)), 1e-13 * double(std::sqrt(sumsq))) << n;
    EXPECT_NEAR(p.mean(), double(mean), 1e-13 * double(std::sqrt(sumsq / n))) << n;
    EXPECT_NEAR(p.variance(), double(var), 1e-12 * double(sumsq / n)) << n;
    EXPECT_TRUE(all_finite(m));
    m(n / 2) = NAN;
    const Stats bad = stats_of(m);
    EXPECT_EQ(bad.nan, 1u) << n;
    EXPECT_FALSE(all_finite(m));
    m(n / 2) = -INFINITY;
    EXPECT_EQ(stats_of(m).neg_inf, 1u) << n;
    EXPECT_FALSE(all_finite(m));
  }
}

// dL/dW for every parameter of a whole network (tanh, biases, mse) against central differences.
TEST(Engine, WholeNetworkGradientsMatchFiniteDifferences) {
  for (const char* act : {"tanh", "sigmoid", "linear"}) {
    const auto sim = resolved(std::string("base { network { depth: 4 width: 5 input_width: 3 activation { name: \"") + act +
                              "\" } } init { params { name: \"bias_std\" number: 0.3 } params { name: \"gain\" number: 1.5 } }"
                              " loss { name: \"mse\" } batch: 7 }");
    Engine<double> engine(sim, test::builtins());
    engine.forward();
    engine.backward();
    auto params = engine.weights();
    ASSERT_EQ(params.size(), 8u);
    for (auto& p : params) {
      const Matrix<double> analytic = *p.grad;
      const Matrix<double> numeric = numeric_gradient([&] { return engine.forward(); }, *p.value);
      EXPECT_LT(relative_error(analytic, numeric), 1e-6) << act << " " << p.name;
    }
    const Matrix<double> dx = engine.input_grad();
    EXPECT_LT(relative_error(dx, numeric_gradient([&] { return engine.forward(); }, engine.input())), 1e-6) << act;
  }
}

// Every weight's and the input's gradient against float64 central differences, with the
// norms' gamma and beta moved away from 1 and 0. Returns the number of projections P.
int expect_network_gradients(const v1::SimSpec& sim) {
  Engine<double> engine(sim, test::builtins());
  engine.forward();
  engine.backward();
  auto params = engine.weights();
  int projections = 0;
  Rng rng(3);
  for (auto& p : params) {
    projections += p.name == "P";
    if (p.role == WeightRole::other) rng.fill_normal(*p.value);  // check away from gamma = 1, beta = 0
  }
  engine.forward();
  engine.backward();
  for (auto& p : params) {
    const Matrix<double> analytic = *p.grad;
    const Matrix<double> numeric = numeric_gradient([&] { return engine.forward(); }, *p.value);
    EXPECT_LT(relative_error(analytic, numeric), 1e-6) << p.name << " of block " << p.block;
  }
  const Matrix<double> dx = engine.input_grad();
  EXPECT_LT(relative_error(dx, numeric_gradient([&] { return engine.forward(); }, engine.input())), 1e-6);
  return projections;
}

// The same with every structural mitigation at once: residual branches of 2 blocks with a
// projection (input width 3 -> 5) and alpha 0.7, batch norm before the activation, layer norm
// at each branch's start (pre-norm) and RMS norm after each merge (post-norm).
TEST(Engine, ResidualAndNormGradientsMatchFiniteDifferences) {
  const std::string mitigations =
      " init { params { name: \"bias_std\" number: 0.3 } } loss { name: \"mse\" } batch: 6"
      " mitigations { name: \"residual\" params { name: \"span\" number: 2 } params { name: \"alpha\" number: 0.7 } }"
      " mitigations { name: \"batch_norm\" }"
      " mitigations { name: \"layer_norm\" params { name: \"placement\" text: \"residual_pre\" } }"
      " mitigations { name: \"rms_norm\" params { name: \"placement\" text: \"residual_post\" } } }";
  const auto sim = resolved("base { network { depth: 5 width: 5 input_width: 3 activation { name: \"tanh\" } }" + mitigations);
  EXPECT_EQ(expect_network_gradients(sim), 1);  // only the first branch changes width
  // Activation first (x + alpha (W phi(x) + b)) with a linear read-out.
  const auto first = resolved("base { network { depth: 5 width: 5 input_width: 3 activation { name: \"tanh\" }"
                              " activation_first: true linear_readout: true }" + mitigations);
  EXPECT_EQ(expect_network_gradients(first), 1);
}

// Closed form: in a deep linear network with orthogonal square weights of gain g,
// dL/dh_i = dL/dh_{i+1} W^T and ||v W^T|| = g ||v|| for every row v, so each layer multiplies
// the gradient norm by exactly g (up to rounding).
TEST(Engine, OrthogonalLinearNetScalesTheGradientByExactlyTheGain) {
  const auto t = run(resolved("base { network { depth: 12 width: 16 activation { name: \"linear\" } }"
                              " init { name: \"orthogonal\" params { name: \"gain\" number: 1.5 } } }"));
  for (int i = 0; i + 1 < 12; ++i)
    EXPECT_NEAR(t.layers(i).grad_norm() / t.layers(i + 1).grad_norm(), 1.5, 1e-12) << i;
}

TEST(Engine, RecordsOneLayerPerBlockWithConsistentNorms) {
  const auto t = run(resolved("base { network { depth: 6 width: 8 activation { name: \"relu\" } } }"));
  ASSERT_EQ(t.layers_size(), 6);
  for (int i = 0; i < 6; ++i) {
    const auto& l = t.layers(i);
    EXPECT_EQ(l.index(), std::uint32_t(i));
    EXPECT_EQ(l.output().count(), 64u * 8u);
    EXPECT_GT(l.output().zero_fraction(), 0.2);  // relu zeroes about half of its inputs
    EXPECT_LT(l.output().zero_fraction(), 0.8);
    // relu passes dL/da where h > 0 and zeroes it elsewhere: |dL/dh| <= |dL/da|.
    EXPECT_LE(l.grad_norm(), l.act_grad_norm() * (1 + 1e-12));
  }
}

// The recorded norms against the engine's own matrices, recomputed here: in a linear network
// with the linear probe, dL/dh of the last block is the probe V and dL/dW_i = x_i^T dL/dh_i,
// with x_i the block's input; dL/da_{i-1} = dL/dh_i W_i^T.
TEST(Engine, RecordedNormsAreTheNormsOfTheGradients) {
  const auto sim = resolved("base { network { depth: 3 width: 6 input_width: 4 activation { name: \"linear\" } } batch: 5 }");
  Engine<double> engine(sim, test::builtins());
  engine.forward();
  engine.backward();
  v1::SimTrace t;
  engine.record(t);
  const auto& w = engine.weights();  // W0 b0 W1 b1 W2 b2
  ASSERT_EQ(w.size(), 6u);
  // Recompute the forward pass and dL/dh from the weights alone.
  std::vector<Matrix<double>> x{engine.input()};
  for (int i = 0; i < 3; ++i) x.push_back((x.back() * *w[2 * i].value).rowwise() + w[2 * i + 1].value->row(0));
  Matrix<double> dh;
  engine.network().loss->backward(x.back(), dh);  // dL/dy = V
  for (int i = 2; i >= 0; --i) {
    EXPECT_NEAR(t.layers(i).grad_norm(), dh.norm(), 1e-12 * dh.norm()) << i;
    const Matrix<double> dW = x[i].transpose() * dh;
    EXPECT_NEAR(t.layers(i).weight_grad_norm(), dW.norm(), 1e-12 * dW.norm()) << i;
    EXPECT_NEAR(t.layers(i).bias_grad_norm(), dh.colwise().sum().norm(), 1e-12 * dh.norm()) << i;
    dh = dh * w[2 * i].value->transpose();
    if (i > 0) EXPECT_NEAR(t.layers(i - 1).act_grad_norm(), dh.norm(), 1e-12 * dh.norm()) << i;
  }
  EXPECT_NEAR(t.input_grad_norm(), dh.norm(), 1e-12 * dh.norm());
}

// Tied weights: one W for every block, its gradient the sum over every use. Against central
// differences of the whole network, and against the sum of what untied blocks would get.
TEST(Engine, TiedWeightsAreOneEntryWithTheGradientOfEveryUse) {
  const auto sim = resolved("base { network { depth: 4 width: 5 activation { name: \"tanh\" } tie_weights: true }"
                            " loss { name: \"mse\" } batch: 3 }");
  Engine<double> engine(sim, test::builtins());
  ASSERT_EQ(engine.weights().size(), 2u);  // W and b of block 0, used by all four blocks
  engine.forward();
  engine.backward();
  for (const auto& p : engine.weights()) {
    const Matrix<double> analytic = *p.grad;
    EXPECT_LT(relative_error(analytic, numeric_gradient([&] { return engine.forward(); }, *p.value)), 1e-6) << p.name;
  }
  v1::SimTrace t;
  engine.record(t);
  EXPECT_GT(t.layers(0).weight_grad_norm(), 0);  // the shared weights are recorded with block 0
  EXPECT_EQ(t.layers(1).weight_grad_norm(), 0);
}

// A layer that draws its own weights (the NTK example: W ~ N(0, 1), y = sigma_w/sqrt(fan_in)
// x W) gets the stream dense's W gets from gaussian(gain = sigma_w), which draws the same
// normals times sigma_w/sqrt(fan_in): so the forward pass and dL/dh agree to rounding, the
// spec's initialiser is ignored, and dL/dW differs by exactly the factor sigma_w/sqrt(fan_in).
TEST(Engine, ALayerDrawsItsOwnWeightsFromTheStreamTheEngineGivesIt) {
  const std::string net = "network { depth: 4 width: 16 activation { name: \"tanh\" } ";
  auto t = [&](const std::string& layer, const std::string& gain) {
    return run(resolved("base { " + net + layer + " } init { params { name: \"gain\" number: " + gain + " } } }",
                        test::with_fixtures()),
               test::with_fixtures());
  };
  const auto dense = t("", "1.5");
  const std::string ntk = "layer { name: \"ntk_dense\" params { name: \"sigma_w\" number: 1.5 } }";
  const auto a = t(ntk, "1.5"), b = t(ntk, "40");
  EXPECT_EQ(a.SerializeAsString().size(), b.SerializeAsString().size());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(a.layers(i).grad_norm(), b.layers(i).grad_norm()) << i;  // the initialiser plays no part
    EXPECT_NEAR(a.layers(i).output().variance() / dense.layers(i).output().variance(), 1.0, 1e-12) << i;
    EXPECT_NEAR(a.layers(i).grad_norm() / dense.layers(i).grad_norm(), 1.0, 1e-12) << i;
    const double factor = 1.5 / std::sqrt(16.0);
    EXPECT_NEAR(a.layers(i).weight_grad_norm() / dense.layers(i).weight_grad_norm(), factor, 1e-12) << i;
  }
}

TEST(Engine, TiedWeightsNeedEqualWidths) {
  auto spec = parse_spec("base { network { depth: 3 width: 5 input_width: 4 tie_weights: true } }", "tie.textproto");
  try {
    validate(spec, test::builtins());
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("tie.textproto:1:"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("network.input_width must equal network.width"));
  }
}

// For a linear network dL/da_{i-1} = dL/dh_i W_i^T, so a mitigation that multiplies dL/da by
// f at every boundary multiplies block i's gradients by exactly f^(depth - i).
TEST(Engine, MitigationHooksActAtEveryBoundaryAndOnParameterGradients) {
  const std::string net = "network { depth: 5 width: 6 activation { name: \"linear\" } }";
  const auto plain = run(resolved("base { " + net + " }", test::with_fixtures()), test::with_fixtures());
  const auto scaled = run(resolved("base { " + net + " mitigations { name: \"scale_grad\" params { name: \"factor\" number: 2 }"
                                   " params { name: \"param_factor\" number: 3 } } }",
                                   test::with_fixtures()),
                          test::with_fixtures());
  for (int i = 0; i < 5; ++i) {
    const double f = std::pow(2.0, 5 - i);
    EXPECT_NEAR(scaled.layers(i).grad_norm() / plain.layers(i).grad_norm(), f, f * 1e-12) << i;
    EXPECT_NEAR(scaled.layers(i).weight_grad_norm() / plain.layers(i).weight_grad_norm(), 3 * f, f * 1e-12) << i;
  }
}

TEST(Engine, SameSpecAndSeedGiveIdenticalBytes) {
  const std::string text = "seed: 9 replicas: 2 base { network { depth: 5 width: 16 activation { name: \"tanh\" } } }";
  const auto a = run(resolved(text)), b = run(resolved(text)), c = run(resolved(text, test::builtins(), 1));
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_NE(a.layers(0).grad_norm(), c.layers(0).grad_norm());
}

// Lower formats round every operation; with the same seed their norms stay within a few
// units of their precision (relative) of float64's over a shallow network.
TEST(Engine, LowerFormatsAgreeWithFloat64WithinTheirPrecision) {
  const std::string net = "network { depth: 4 width: 32 activation { name: \"tanh\" } }";
  const auto ref = run(resolved("base { " + net + " }"));
  const std::vector<std::pair<const char*, double>> formats = {
      {"FLOAT32", std::numeric_limits<float>::epsilon()},
      {"BFLOAT16", double(Eigen::NumTraits<bfloat16>::epsilon())},
      {"FLOAT16", double(Eigen::NumTraits<float16>::epsilon())}};
  for (const auto& [dtype, eps] : formats) {
    const auto t = run(resolved("base { " + net + " dtype: " + dtype + " }"));
    // Rounding errors of the many products behind one norm are independent and mostly
    // cancel: a norm's relative error stays within a few eps (measured: under 0.2 eps).
    const double tol = 4 * eps;
    for (int i = 0; i < 4; ++i)
      EXPECT_NEAR(t.layers(i).grad_norm() / ref.layers(i).grad_norm(), 1.0, tol) << dtype << " " << i;
  }
}

TEST(Engine, PluginExceptionBecomesAFailedRecord) {
  const auto sim = resolved("base { network { depth: 3 width: 4 activation { name: \"throwing\" } } }", test::with_fixtures());
  v1::SimTrace t;
  simulate(sim, test::with_fixtures(), t);
  EXPECT_EQ(t.status(), v1::SimTrace::FAILED);
  EXPECT_EQ(t.message(), "throwing: input above limit");
  EXPECT_EQ(t.layers_size(), 0);
}

TEST(Engine, OverflowIsAResultNotAFailure) {
  // gain 1e6 over 40 linear float32 layers: activations pass 3.4e38 and become inf.
  const auto t = run(resolved("base { dtype: FLOAT32 network { depth: 40 width: 8 activation { name: \"linear\" } }"
                              " init { params { name: \"gain\" number: 1e6 } } }"));
  EXPECT_GT(t.layers(39).output().pos_inf() + t.layers(39).output().neg_inf() + t.layers(39).output().nan(), 0u);
}

}  // namespace
}  // namespace gradsim

// Recurrent networks unrolled through time: backpropagation through time against finite
// differences with shared weights, the closed form of a linear RNN with orthogonal W, Pascanu's
// bound for tanh, and the shipped specs rnn_horizon and rnn_clipping.
#include <gmock/gmock.h>

#include <Eigen/SVD>

#include "simulate.hpp"
#include "../e2e/run_sims.hpp"
#include "check/gradcheck.hpp"
#include "network/engine.hpp"
#include "error.hpp"
#include "spec/spec.hpp"

namespace gradsim {
namespace {

using test::resolved;
v1::SimTrace run(const v1::SimSpec& sim) { return test::simulated(sim); }

std::string rnn(const std::string& cell, int steps, const std::string& more = "") {
  return "base { network { depth: " + std::to_string(steps) + " width: 4 activation { name: \"tanh\" } recurrent { cell { name: \"" +
         cell + "\" } input_width: 3 " + more + " } } loss { name: \"mse\" } batch: 3"
         " init { params { name: \"gain\" number: 0.8 } params { name: \"bias_std\" number: 0.3 } } }";
}

// The whole unrolled network (20 steps; 2 stacked layers reading every step; an rnn under
// clipping of the flowing gradient) against central differences: one entry per weight, its
// gradient summed over the steps, and dL/ds_0.
TEST(Recurrent, UnrolledNetworkGradientsMatchFiniteDifferences) {
  for (const auto& [cell, more, weights] :
       {std::tuple{"rnn", "", 3}, {"gru", "", 3}, {"lstm", "", 3}, {"lstm", "layers: 2 read: EVERY", 6},
        {"gru", "layers: 2", 6}}) {
    Engine<double> engine(resolved(rnn(cell, 20, more)), test::builtins());
    engine.forward();
    engine.backward();
    ASSERT_EQ(engine.weights().size(), std::size_t(weights)) << cell << " " << more;  // shared, not copies
    for (auto& p : engine.weights()) {
      const Matrix<double> analytic = *p.grad;
      EXPECT_LT(relative_error(analytic, numeric_gradient([&] { return engine.forward(); }, *p.value)), 1e-6)
          << cell << " " << more << ": " << p.name;
    }
    const Matrix<double> ds0 = engine.input_grad();
    EXPECT_LT(relative_error(ds0, numeric_gradient([&] { return engine.forward(); }, engine.input())), 1e-6)
        << cell << " " << more;
  }
}

// h_t = h_{t-1} W + x_t U + b with W orthogonal times g: dL/dh_{t-1} = dL/dh_t W^T, and
// ||v W^T|| = g ||v||, so every step back multiplies the gradient norm by exactly g.
TEST(Recurrent, LinearRnnWithOrthogonalWeightsScalesTheGradientByExactlyTheGain) {
  for (double g : {0.9, 1.1}) {
    const auto t = run(resolved("base { network { depth: 40 width: 16 activation { name: \"linear\" }"
                                " recurrent { cell { name: \"rnn\" } } } init { name: \"orthogonal\" params { name: \"gain\""
                                " number: " + std::to_string(g) + " } } }"));
    for (int s = 0; s + 1 < 40; ++s)
      EXPECT_NEAR(t.layers(s).grad_norm() / t.layers(s + 1).grad_norm(), g, 1e-12) << g << " step " << s;
  }
}

// Pascanu, Mikolov & Bengio (2013): with |tanh'| <= 1, ||dL/dh_{t-1}|| <= s_max(W) ||dL/dh_t||,
// so with the largest singular value of W below 1 the gradient vanishes at least as fast as
// s_max^(T-t). With a large spectral radius (gain 3: past the edge of chaos, sigma_w^2
// E[tanh'^2] > 1) it grows instead.
TEST(Recurrent, TanhRnnVanishesAtLeastGeometricallyBelowPascanusBoundAndExplodesPastIt) {
  const auto sim = resolved("base { network { depth: 60 width: 32 activation { name: \"tanh\" }"
                            " recurrent { cell { name: \"rnn\" } } } init { params { name: \"gain\" number: 0.4 } } }");
  Engine<double> engine(sim, test::builtins());
  v1::SimTrace t;
  engine.run(t);
  const auto& W = *engine.weights().front().value;
  ASSERT_EQ(engine.weights().front().name, "W");
  const double s_max = Eigen::JacobiSVD<Matrix<double>>(W).singularValues()(0);
  ASSERT_LT(s_max, 1);
  ASSERT_GT(s_max, 0.5);
  const double last = t.layers(59).grad_norm();
  for (int s = 0; s < 59; ++s) EXPECT_LE(t.layers(s).grad_norm(), std::pow(s_max, 59 - s) * last * (1 + 1e-12)) << s;
  // (Small inputs: x_t U of gain 3 would otherwise saturate the units and shrink tanh'.)
  const auto wild = run(resolved("base { network { depth: 60 width: 32 activation { name: \"tanh\" }"
                                 " recurrent { cell { name: \"rnn\" } input_variance: 0.01 } }"
                                 " init { params { name: \"gain\" number: 3 } } }"));
  EXPECT_GT(wild.layers(0).grad_norm() / wild.layers(59).grad_norm(), 1e2);
}

// Le, Jaitly & Hinton (2015), IRNN: a relu RNN with W = I (the identity initialiser) and small
// inputs keeps the gradient: an active unit stays active and passes dL/dh through unchanged.
// With orthogonal W instead, relu zeroes a different half at every step and it vanishes.
TEST(Recurrent, IdentityInitialisedReluRnnKeepsTheGradient) {
  const auto spec = [](const char* init) {
    return resolved(std::string("base { network { depth: 100 width: 32 activation { name: \"relu\" }"
                                " recurrent { cell { name: \"rnn\" } input_variance: 0.01 } } init { name: \"") + init + "\" } }");
  };
  EXPECT_LT(std::fabs(test::log_ratio(run(spec("identity")))), 0.5);
  EXPECT_LT(test::log_ratio(run(spec("orthogonal"))), -5);
}

TEST(Recurrent, SpecErrorsNameTheField) {
  auto expect = [](const std::string& text, const std::string& what) {
    try {
      resolved(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const SpecError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(what));
    }
  };
  expect("base { network { depth: 3 width: 4 recurrent { cell { name: \"lstn\" } } } }", "lstn");
  expect("base { network { depth: 3 width: 4 recurrent { cell { name: \"rnn\" } } } jacobian { samples: 1 } }",
         "Jacobian spectra of recurrent networks are not computed yet");
  expect("base { network { depth: 3 width: 4 tie_weights: true recurrent { cell { name: \"rnn\" } } } }",
         "network.tie_weights shapes feed-forward blocks");
}

// Decades the gradient loses per step back from the loss: -log10(first / last) / (T - 1).
double decades_per_step(const v1::SimTrace& t) { return -test::log_ratio(t) / double(t.layers_size() - 1); }

TEST(Recurrent, ShippedHorizonSpecShowsTheForgetBiasSettingTheHorizon) {
  const auto ts = test::run_sim("rnn_horizon.textproto");
  ASSERT_EQ(ts.size(), 9u);
  double rate[3] = {0, 0, 0};
  for (const auto& t : ts) rate[t.index() / 3] += decades_per_step(t) / 3;
  EXPECT_GT(rate[0], 0.15);            // tanh rnn: about 0.2 decades per step
  EXPECT_LT(rate[1], 0.5 * rate[0]);   // lstm, forget bias 1: less than half as fast
  EXPECT_LT(rate[2], 0.4 * rate[1]);   // forget bias 2: slower again
  EXPECT_LT(3 / rate[2], 200);         // three decades still within the sequence
  EXPECT_GT(3 / rate[2], 100);
}

TEST(Recurrent, ShippedClippingSpecTrainsOnlyWithClipping) {
  const auto ts = test::run_sim("rnn_clipping.textproto");
  ASSERT_EQ(ts.size(), 2u);
  const auto &plain = ts[0], &clipped = ts[1];
  for (const auto& t : ts) EXPECT_GT(test::log_ratio(t), 1);  // exploding through time at initialisation
  double biggest = 0;
  for (const auto& s : plain.steps()) biggest = std::max(biggest, s.param_grad_norm());
  EXPECT_GT(biggest, 1e8);
  EXPECT_GT(plain.steps(19).loss(), plain.steps(0).loss());  // thrown out of range, and stuck there
  EXPECT_EQ(plain.steps(19).param_grad_norm(), 0);            // every unit saturated
  for (const auto& s : clipped.steps()) EXPECT_NEAR(s.param_grad_norm(), 1, 1e-9);
  EXPECT_LT(clipped.steps(19).loss(), clipped.steps(0).loss() - 2);
}

}  // namespace
}  // namespace gradsim

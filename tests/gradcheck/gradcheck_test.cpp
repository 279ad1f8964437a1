// Every built-in plugin through the harness `gradsim gradcheck` runs (check/gradcheck.hpp):
// backward passes against central finite differences in float64, layers applied twice,
// mitigations inside a whole network, initialisers against their declared variances. The
// suite is parameterised over whatever the plugin directory holds, so a new plugin is checked
// without touching this file, and no plugin can pass by having nothing checked.
#include <gmock/gmock.h>

#include "../common.hpp"
#include "check/gradcheck.hpp"

namespace gradsim {
namespace {

std::vector<std::string> keys_of(const Registry& r) {
  std::vector<std::string> out;
  for (const auto& e : r.entries()) out.push_back(std::string(kind_name(e.info->kind)) + ":" + e.info->name);
  return out;
}

const PluginInfo& info_of(const std::string& key, const Registry& r = test::builtins()) {
  const auto colon = key.find(':');
  for (Kind k : {Kind::layer, Kind::activation, Kind::loss, Kind::initializer, Kind::mitigation, Kind::cell, Kind::optimizer})
    if (key.substr(0, colon) == kind_name(k)) return *r.get(k, key.substr(colon + 1)).info;
  throw std::logic_error(key);
}

class EveryPlugin : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryPlugin, PassesTheGradientCheck) {
  for (std::uint64_t seed : {1, 2, 3}) {
    const auto results = check_plugin(info_of(GetParam()), test::builtins(), seed);
    ASSERT_FALSE(results.empty()) << "nothing was checked";
    for (const auto& r : results) EXPECT_TRUE(r.pass()) << r.what << ": " << r.error << " > " << r.tolerance << " seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Builtin, EveryPlugin, ::testing::ValuesIn(keys_of(test::builtins())), [](const auto& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), ':', '_');
  return n;
});

// What each kind's check covers, so that a kind cannot drift to an empty or partial check.
TEST(GradCheck, ChecksEveryQuantityOfEachKind) {
  auto whats = [](const std::string& key) {
    std::vector<std::string> out;
    for (const auto& r : check_plugin(info_of(key), test::builtins(), 1)) out.push_back(r.what);
    return out;
  };
  using ::testing::IsSupersetOf;
  EXPECT_THAT(whats("layer:dense"), IsSupersetOf({"dx 5->4", "dx (2nd call) 5->4", "W 5->4", "b 5->4", "W 5->5"}));
  EXPECT_THAT(whats("activation:tanh"), IsSupersetOf({"dh"}));
  EXPECT_THAT(whats("loss:mse"), IsSupersetOf({"dy"}));
  EXPECT_THAT(whats("initializer:xavier"), IsSupersetOf({"Var W 400x300", "Var W 300x400", "mean W 400x300",
                                                         "Var b 400x300 (declared 0)"}));
  EXPECT_THAT(whats("initializer:identity"), IsSupersetOf({"W 400x300 finite", "W 400x300 reproducible"}));
  EXPECT_THAT(whats("mitigation:residual"), IsSupersetOf({"projection dx", "projection P", "network P of block 0",
                                                          "network W of block 2", "network dx"}));
  EXPECT_THAT(whats("mitigation:layer_norm"), IsSupersetOf({"pre_activation dx", "pre_activation gamma",
                                                            "network gamma of block 1"}));
  EXPECT_THAT(whats("mitigation:clip_grad_norm"), IsSupersetOf({"network W of block 0", "network dx"}));
  EXPECT_THAT(whats("cell:lstm"), IsSupersetOf({"ds_prev", "dx", "W", "U", "b", "ds_0 (20 steps)", "W (20 steps)",
                                                "U (20 steps)", "ds_0 (5 steps, 2 layers)", "layer0.W (5 steps, 2 layers)",
                                                "layer1.U (5 steps, 2 layers)"}));
  EXPECT_THAT(whats("optimizer:adam"), IsSupersetOf({"first step downhill (cos(update, dL/dw) <= 0)",
                                                     "L after 50 steps / L before", "lr 0 leaves w",
                                                     "float32 steps = float64 steps"}));
}

// A norm whose defaults insert it at one site still has its layers checked at every other
// site, affine or not.
TEST(GradCheck, NormsAtEveryPlacement) {
  for (const char* norm : {"batch_norm", "layer_norm", "rms_norm"})
    for (const char* placement : {"pre_activation", "post_activation", "residual_pre", "residual_post"})
      for (bool affine : {true, false}) {
        const auto& info = *test::builtins().get(Kind::mitigation, norm).info;
        Params p = defaults_of(info.params);
        p.set("placement", {0, placement});
        p.set("affine", {affine ? 1.0 : 0.0, ""});
        const auto results = check_plugin(info, test::builtins(), 7, &p);
        ASSERT_FALSE(results.empty());
        int sites = 0;
        for (const auto& r : results) {
          EXPECT_TRUE(r.pass()) << norm << " " << placement << " " << r.what << ": " << r.error;
          sites += r.what.find("dx (2nd call)") != std::string::npos;
        }
        EXPECT_EQ(sites, 1) << norm << " " << placement;
      }
}

// Clipping that fires: the engine's clipped gradients equal the clipped central differences.
TEST(GradCheck, ClippingHooksMatchClippedFiniteDifferences) {
  for (const char* clip : {"clip_grad_norm", "clip_layer_grad_norm", "clip_grad_value"}) {
    const auto& info = *test::builtins().get(Kind::mitigation, clip).info;
    Params p = defaults_of(info.params);
    p.set("max", {1e-3, ""});  // small enough to fire on every gradient of the test network
    for (const auto& r : check_plugin(info, test::builtins(), 2, &p)) EXPECT_TRUE(r.pass()) << clip << " " << r.what;
  }
}

// The example plugins, one of each kind, pass the same checks.
TEST(GradCheck, ExamplePluginsPass) {
  for (const char* key : {"layer:ntk_dense", "initializer:sparse", "loss:huber", "mitigation:layer_scale"})
    for (std::uint64_t seed : {1, 2, 3}) {
      const auto results = check_plugin(info_of(key, test::with_fixtures()), test::with_fixtures(), seed);
      ASSERT_FALSE(results.empty()) << key;
      for (const auto& r : results) EXPECT_TRUE(r.pass()) << key << " " << r.what << ": " << r.error << " > " << r.tolerance;
    }
}

TEST(GradCheck, CatchesAWrongBackward) {
  const auto results = check_plugin(info_of("activation:wrong_cube", test::with_fixtures()), test::with_fixtures(), 1);
  ASSERT_EQ(results.size(), 2u);  // its backward, and its forward mode (the same wrong f')
  EXPECT_EQ(results[0].what, "dh");
  EXPECT_GT(results[0].error, 0.1);
  EXPECT_EQ(results[1].what, "tangent");
  EXPECT_GT(results[1].error, 0.1);
}

// The v0.1 pattern (the layer keeps its last input): right when called once, wrong when the
// same layer is applied twice in one pass. Only the weight gradient uses the kept input.
TEST(GradCheck, CatchesALayerThatKeepsStateBetweenCalls) {
  for (const auto& r : check_plugin(info_of("layer:stateful", test::with_fixtures()), test::with_fixtures(), 1)) {
    if (r.what.rfind("W", 0) == 0) EXPECT_FALSE(r.pass()) << r.what;
    else EXPECT_TRUE(r.pass()) << r.what;
  }
}

TEST(GradCheck, CatchesAnInitialiserThatDrawsOtherThanItDeclares) {
  int failed = 0;
  for (const auto& r : check_plugin(info_of("initializer:lying_init", test::with_fixtures()), test::with_fixtures(), 1))
    failed += !r.pass();
  // Var W and Var b, both shapes (2 vs 1, and 2/fan_in vs 2); W's draws are not its normal_std.
  EXPECT_EQ(failed, 6);
}

// gaussian promises W ~ N(0, gain^2/fan_in) and b ~ N(0, bias_std^2): its help text, checked
// here against the draws directly (the harness checks them against what variances() says).
// With n = 512*256 draws the sample std has relative standard error 1/sqrt(2n) = 0.2%; we
// allow 5 standard errors.
Matrix<double> draw(const std::string& init, std::vector<std::pair<std::string, Params::Value>> params,
                    Eigen::Index rows, Eigen::Index cols, WeightRole role = WeightRole::weight) {
  const auto& info = *test::builtins().get(Kind::initializer, init).info;
  Params p = defaults_of(info.params);
  for (auto& [k, v] : params) p.set(k, v);
  Rng rng(13);
  Matrix<double> W(rows, cols);
  info.initializer(p)->fill(role, std::size_t(rows), std::size_t(cols), W, rng);
  return W;
}

// Sample std within 5 standard errors (relative standard error of a std from n draws: 1/sqrt(2n)).
void expect_std(const Matrix<double>& W, double std, const std::string& what) {
  const double n = double(W.size());
  EXPECT_NEAR(std::sqrt(W.squaredNorm() / n) / std, 1.0, 5 / std::sqrt(2 * n)) << what;
}

TEST(Initializer, GaussianHasTheVarianceItPromises) {
  const auto W = draw("gaussian", {{"gain", {2.0, ""}}}, 512, 256);
  expect_std(W, 2.0 / std::sqrt(512.0), "W");
  EXPECT_NEAR(W.mean(), 0.0, 5 * 2.0 / std::sqrt(512.0) / std::sqrt(double(W.size())));
  expect_std(draw("gaussian", {{"bias_std", {0.25, ""}}}, 1, 4096, WeightRole::bias), 0.25, "b");
}

TEST(Initializer, XavierAndHeHaveTheVarianceTheyPromise) {
  expect_std(draw("xavier", {}, 300, 500), std::sqrt(2.0 / 800), "xavier normal");
  expect_std(draw("xavier", {{"distribution", {0, "uniform"}}}, 300, 500), std::sqrt(2.0 / 800), "xavier uniform");
  expect_std(draw("he", {}, 300, 500), std::sqrt(2.0 / 300), "he relu fan_in");
  expect_std(draw("he", {{"mode", {0, "fan_out"}}}, 300, 500), std::sqrt(2.0 / 500), "he relu fan_out");
  expect_std(draw("he", {{"nonlinearity", {0, "tanh"}}, {"distribution", {0, "uniform"}}}, 300, 500),
             5.0 / 3 / std::sqrt(300.0), "he tanh uniform");
  const auto U = draw("he", {{"distribution", {0, "uniform"}}}, 300, 500);
  EXPECT_LE(U.cwiseAbs().maxCoeff(), std::sqrt(2.0 / 300) * std::sqrt(3.0));  // U(-b, b), b = std sqrt 3
  EXPECT_TRUE(draw("he", {}, 3, 4, WeightRole::bias).isZero());
  // Every initialiser takes bias_std (sigma_b^2 of mean-field theory); identity, not random,
  // states no variances.
  expect_std(draw("identity", {{"bias_std", {0.25, ""}}}, 1, 4096, WeightRole::bias), 0.25, "identity");
  for (const char* name : {"xavier", "he", "orthogonal"}) {
    expect_std(draw(name, {{"bias_std", {0.25, ""}}}, 1, 4096, WeightRole::bias), 0.25, name);
    const auto* info = test::builtins().get(Kind::initializer, name).info;
    auto params = defaults_of(info->params);
    params.set("bias_std", {0.25, ""});
    EXPECT_EQ(info->initializer(params)->variances(300, 500)->sigma_b2, 0.0625) << name;
  }
}

TEST(Initializer, OrthogonalIsExactlyOrthogonalInAnyShape) {
  for (auto [rows, cols] : {std::pair{64, 64}, std::pair{80, 30}, std::pair{30, 80}}) {
    const auto W = draw("orthogonal", {{"gain", {2.5, ""}}}, rows, cols);
    const Matrix<double> gram = rows >= cols ? Matrix<double>(W.transpose() * W) : Matrix<double>(W * W.transpose());
    EXPECT_LT((gram - 6.25 * Matrix<double>::Identity(gram.rows(), gram.cols())).cwiseAbs().maxCoeff(), 1e-12)
        << rows << "x" << cols;
  }
}

TEST(Initializer, IdentityIsScaledIdentity) {
  EXPECT_TRUE(draw("identity", {{"gain", {0.5, ""}}}, 4, 6).isApprox(0.5 * Matrix<double>::Identity(4, 6)));
}

// linear_probe promises E ||dL/dy||^2 = 1 for any output shape: over 400 seeds the mean of
// ||V||^2 (each a chi-square/n with n = batch*width) has standard error sqrt(2/(n*400)).
TEST(Loss, LinearProbeGradientHasUnitExpectedNorm) {
  for (auto [batch, width] : {std::pair{2, 3}, std::pair{64, 256}}) {
    double sum = 0;
    const int seeds = 400;
    for (int s = 0; s < seeds; ++s) {
      auto loss = test::builtins().get(Kind::loss, "linear_probe").info->make<double>().loss(Params{});
      Rng rng{std::uint64_t(s)};
      loss->setup(std::size_t(batch), std::size_t(width), rng);
      Matrix<double> y = Matrix<double>::Zero(batch, width), dy;
      loss->backward(y, dy);
      sum += dy.squaredNorm();
    }
    EXPECT_NEAR(sum / seeds, 1.0, 5 * std::sqrt(2.0 / (batch * width * seeds))) << batch << "x" << width;
  }
}

}  // namespace
}  // namespace gradsim

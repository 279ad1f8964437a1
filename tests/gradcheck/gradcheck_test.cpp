// Every plugin's backward pass against central finite differences in float64, in one
// parameterised suite over whatever the plugin directory holds (a new plugin is checked
// without touching this file). Initialisers are checked against the distribution they promise.
#include <gmock/gmock.h>

#include <gradsim/gradcheck.hpp>

#include "../common.hpp"

namespace gradsim {
namespace {

constexpr double kTolerance = 1e-6;  // relative error, central differences with step 1e-6

Params defaults(const PluginInfo& info) {
  Params p;
  for (const auto& d : info.params) p.set(d.name, {d.default_number, d.default_text});
  return p;
}

// Returns the relative errors of every gradient the plugin computes.
std::vector<GradCheckResult> check(const PluginInfo& info, std::uint64_t seed) {
  Rng rng(seed);
  const auto& make = info.make<double>();
  switch (info.kind) {
    case Kind::layer: {  // square, and rectangular where the layer allows it (gain does not)
      std::vector<GradCheckResult> out;
      for (std::size_t fan_out : {5, 4}) {
        std::unique_ptr<Layer<double>> layer;
        try {
          layer = make.layer(LayerArgs{5, fan_out, defaults(info)});
        } catch (const std::invalid_argument&) {
          continue;
        }
        for (const auto& r : check_layer(*layer, 3, 5, rng)) out.push_back(r);
      }
      return out;
    }
    case Kind::activation:
      return {check_activation(*make.activation(defaults(info)), 4, 6, rng)};
    case Kind::loss:
      return {check_loss(*make.loss(defaults(info)), 4, 6, rng)};
    case Kind::mitigation: {
      // Every layer the mitigation inserts at any site (with its default parameters), and its
      // shortcut projection. A mitigation that only acts through hooks has nothing to check.
      std::vector<GradCheckResult> out;
      auto m = make.mitigation(defaults(info));
      std::vector<std::unique_ptr<Layer<double>>> layers;
      for (Site site : {Site::segment_in, Site::pre_activation, Site::post_activation, Site::segment_out})
        layers.push_back(m->insert(site, 0, 6, 4));
      layers.push_back(m->projection(5, 6));
      for (auto& layer : layers)
        if (layer)
          for (auto r : check_layer(*layer, 4, layer.get() == layers.back().get() ? 5 : 6, rng)) out.push_back(r);
      return out;
    }
    default:
      return {};
  }
}

// A mitigation whose defaults insert nothing (say, another placement) still has its layers
// checked: this runs each norm at every placement.
TEST(GradCheck, NormsAtEveryPlacement) {
  for (const char* norm : {"batch_norm", "layer_norm", "rms_norm"})
    for (const char* placement : {"pre_activation", "post_activation", "residual_pre", "residual_post"})
      for (bool affine : {true, false}) {
        const auto& info = *test::builtins().get(Kind::mitigation, norm).info;
        Params p = defaults(info);
        p.set("placement", {0, placement});
        p.set("affine", {affine ? 1.0 : 0.0, ""});
        auto m = info.make<double>().mitigation(p);
        int found = 0;
        for (Site site : {Site::segment_in, Site::pre_activation, Site::post_activation, Site::segment_out})
          if (auto layer = m->insert(site, 0, 6, 4)) {
            ++found;
            Rng rng(7);
            for (const auto& r : check_layer(*layer, 5, 6, rng))
              EXPECT_LT(r.error, kTolerance) << norm << " " << placement << " " << r.what;
          }
        EXPECT_EQ(found, 1) << norm << " " << placement;
      }
}

std::vector<std::string> names_of(const Registry& r, std::initializer_list<Kind> kinds) {
  std::vector<std::string> out;
  for (const auto& e : r.entries())
    if (std::find(kinds.begin(), kinds.end(), e.info->kind) != kinds.end())
      out.push_back(std::string(kind_name(e.info->kind)) + ":" + e.info->name);
  return out;
}

const PluginInfo& info_of(const std::string& key, const Registry& r = test::builtins()) {
  const auto colon = key.find(':');
  for (Kind k : {Kind::layer, Kind::activation, Kind::loss, Kind::initializer, Kind::mitigation})
    if (key.substr(0, colon) == kind_name(k)) return *r.get(k, key.substr(colon + 1)).info;
  throw std::logic_error(key);
}

class BackwardMatchesFiniteDifferences : public ::testing::TestWithParam<std::string> {};

TEST_P(BackwardMatchesFiniteDifferences, InFloat64) {
  for (std::uint64_t seed : {1, 2, 3}) {
    const auto results = check(info_of(GetParam()), seed);
    ASSERT_FALSE(results.empty());
    for (const auto& r : results) EXPECT_LT(r.error, kTolerance) << r.what << " seed " << seed;
  }
}

// Every plugin that computes a gradient: layers, activations, losses, and the mitigations that
// insert layers (those acting through hooks only, like clipping, are tested in mitigation_test).
std::vector<std::string> with_backward() {
  std::vector<std::string> out;
  for (const auto& key : names_of(test::builtins(), {Kind::layer, Kind::activation, Kind::loss, Kind::mitigation}))
    if (!check(info_of(key), 1).empty()) out.push_back(key);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Builtin, BackwardMatchesFiniteDifferences, ::testing::ValuesIn(with_backward()),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), ':', '_');
                           return n;
                         });

TEST(GradCheck, CatchesAWrongBackward) {
  const auto results = check(info_of("activation:wrong_cube", test::with_fixtures()), 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_GT(results[0].error, 0.1);
}

TEST(GradCheck, EveryBuiltinKindIsCovered) {
  EXPECT_FALSE(names_of(test::builtins(), {Kind::layer}).empty());
  EXPECT_GE(names_of(test::builtins(), {Kind::activation}).size(), 4u);
  EXPECT_GE(names_of(test::builtins(), {Kind::loss}).size(), 2u);
}

// gaussian promises W ~ N(0, gain^2/fan_in) and b ~ N(0, bias_std^2). With n = 512*256 draws
// the sample std has relative standard error 1/sqrt(2n) = 0.2%; we allow 5 standard errors.
TEST(Initializer, GaussianHasTheVarianceItPromises) {
  Params p;
  p.set("gain", {2.0, ""});
  p.set("bias_std", {0.25, ""});
  auto init = test::builtins().get(Kind::initializer, "gaussian").info->initializer(p);
  Rng rng(11);
  Eigen::MatrixXd W(512, 256), b(1, 4096);
  init->fill(ParamRole::weight, 512, 256, W, rng);
  init->fill(ParamRole::bias, 512, 256, b, rng);
  const double n = double(W.size()), w_std = 2.0 / std::sqrt(512.0);
  const double sample_std = std::sqrt(W.squaredNorm() / n);
  EXPECT_NEAR(sample_std / w_std, 1.0, 5 / std::sqrt(2 * n));
  EXPECT_NEAR(W.mean(), 0.0, 5 * w_std / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(b.squaredNorm() / double(b.size())) / 0.25, 1.0, 5 / std::sqrt(2.0 * double(b.size())));
}

Eigen::MatrixXd draw(const std::string& init, std::vector<std::pair<std::string, Params::Value>> params,
                     Eigen::Index rows, Eigen::Index cols, ParamRole role = ParamRole::weight) {
  const auto& info = *test::builtins().get(Kind::initializer, init).info;
  Params p = defaults(info);
  for (auto& [k, v] : params) p.set(k, v);
  Rng rng(13);
  Eigen::MatrixXd W(rows, cols);
  info.initializer(p)->fill(role, std::size_t(rows), std::size_t(cols), W, rng);
  return W;
}

// Sample std within 5 standard errors (relative standard error of a std from n draws: 1/sqrt(2n)).
void expect_std(const Eigen::MatrixXd& W, double std, const std::string& what) {
  const double n = double(W.size());
  EXPECT_NEAR(std::sqrt(W.squaredNorm() / n) / std, 1.0, 5 / std::sqrt(2 * n)) << what;
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
  EXPECT_TRUE(draw("he", {}, 3, 4, ParamRole::bias).isZero());
}

TEST(Initializer, OrthogonalIsExactlyOrthogonalInAnyShape) {
  for (auto [rows, cols] : {std::pair{64, 64}, std::pair{80, 30}, std::pair{30, 80}}) {
    const auto W = draw("orthogonal", {{"gain", {2.5, ""}}}, rows, cols);
    const Eigen::MatrixXd gram = rows >= cols ? Eigen::MatrixXd(W.transpose() * W) : Eigen::MatrixXd(W * W.transpose());
    EXPECT_LT((gram - 6.25 * Eigen::MatrixXd::Identity(gram.rows(), gram.cols())).cwiseAbs().maxCoeff(), 1e-12)
        << rows << "x" << cols;
  }
}

TEST(Initializer, IdentityIsScaledIdentity) {
  EXPECT_TRUE(draw("identity", {{"gain", {0.5, ""}}}, 4, 6).isApprox(0.5 * Eigen::MatrixXd::Identity(4, 6)));
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

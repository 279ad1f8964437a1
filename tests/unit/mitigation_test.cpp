// Mitigations through the engine: what clipping and loss scaling do to the gradients an
// optimiser sees, and that they record it.
#include <gmock/gmock.h>

#include "../common.hpp"
#include "network/engine.hpp"
#include "spec/spec.hpp"

namespace gradsim {
namespace {

v1::SimTrace run(const std::string& base) {
  auto spec = parse_spec("base { " + base + " }", "m.textproto");
  auto sim = sim_at(spec.sweep, 0);
  resolve(sim, test::builtins());
  v1::SimTrace t;
  simulate(sim, test::builtins(), t);
  EXPECT_EQ(t.status(), v1::SimTrace::OK) << t.message();
  return t;
}

// relu with gain 3 over 12 layers: gradients grow ~ (3/sqrt 2)^12 toward the input.
const std::string kExploding =
    "network { depth: 12 width: 16 activation { name: \"relu\" } } init { params { name: \"gain\" number: 3 } } ";

double joint_weight_norm(const v1::SimTrace& t) {
  double s = 0;
  for (const auto& l : t.layers()) s += l.weight_grad_norm() * l.weight_grad_norm() + l.bias_grad_norm() * l.bias_grad_norm();
  return std::sqrt(s);
}

TEST(Clipping, GlobalNormCapsTheJointParameterGradient) {
  const auto plain = run(kExploding);
  const auto t = run(kExploding + "mitigations { name: \"clip_grad_norm\" params { name: \"max\" number: 1 } }");
  ASSERT_GT(joint_weight_norm(plain), 10);
  EXPECT_NEAR(joint_weight_norm(t), 1.0, 1e-12);
  ASSERT_EQ(t.events_size(), 1);
  const auto& e = t.events(0);
  EXPECT_EQ(e.mitigation(), "clip_grad_norm");
  EXPECT_EQ(e.what(), "param_grad_norm");
  EXPECT_EQ(e.layer(), -1);
  EXPECT_TRUE(e.fired());
  EXPECT_NEAR(e.before(), joint_weight_norm(plain), 1e-9 * e.before());
  EXPECT_NEAR(e.after(), 1.0, 1e-12);
  // Clipping scales, it does not turn: the ratio between layers is kept.
  for (int i = 1; i < 12; ++i)
    EXPECT_NEAR(t.layers(i).weight_grad_norm() / t.layers(0).weight_grad_norm(),
                plain.layers(i).weight_grad_norm() / plain.layers(0).weight_grad_norm(), 1e-9);
}

TEST(Clipping, PerLayerNormCapsEachBlock) {
  const auto plain = run(kExploding);
  const auto t = run(kExploding + "mitigations { name: \"clip_layer_grad_norm\" params { name: \"max\" number: 0.5 } }");
  ASSERT_EQ(t.events_size(), 12);
  for (int i = 0; i < 12; ++i) {
    const double before = std::hypot(plain.layers(i).weight_grad_norm(), plain.layers(i).bias_grad_norm());
    const double after = std::hypot(t.layers(i).weight_grad_norm(), t.layers(i).bias_grad_norm());
    EXPECT_EQ(t.events(i).layer(), i);
    EXPECT_EQ(t.events(i).fired(), before > 0.5) << i;
    EXPECT_NEAR(after, std::min(before, 0.5), 1e-12) << i;
  }
}

TEST(Clipping, ValueClampsEveryElement) {
  const auto t = run(kExploding + "mitigations { name: \"clip_grad_value\" params { name: \"max\" number: 0.01 } }");
  for (const auto& l : t.layers()) EXPECT_LE(l.weight_grad().max_abs(), 0.01);
  EXPECT_TRUE(std::any_of(t.events().begin(), t.events().end(), [](const auto& e) { return e.fired(); }));
}

TEST(Clipping, FlowingClipsTheBackwardSignalAtEveryBoundary) {
  const auto t = run(kExploding + "mitigations { name: \"clip_grad_norm\" params { name: \"max\" number: 100 }"
                                  " params { name: \"flowing\" flag: true } }");
  const auto plain = run(kExploding);
  int flowing = 0;
  for (const auto& e : t.events()) flowing += e.what() == "flowing_grad_norm";
  EXPECT_EQ(flowing, 12);
  for (int i = 0; i < 12; ++i) EXPECT_LE(t.layers(i).act_grad_norm(), 100 * (1 + 1e-12)) << i;
  EXPECT_GT(plain.layers(0).act_grad_norm(), 100);  // so clipping had something to do
}

// Loss scaling by a power of two is exact in binary floating point: the unscaled parameter
// gradients equal the unscaled run's bit for bit, while dL/dh is held scaled.
TEST(LossScale, StaticScaleIsUndoneExactlyOnParameterGradients) {
  const std::string net = "network { depth: 6 width: 8 activation { name: \"tanh\" } } ";
  const auto plain = run(net);
  const auto t = run(net + "mitigations { name: \"loss_scale\" params { name: \"mode\" text: \"static\" }"
                           " params { name: \"scale\" number: 1024 } }");
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(t.layers(i).weight_grad_norm(), plain.layers(i).weight_grad_norm());
    EXPECT_DOUBLE_EQ(t.layers(i).grad_norm(), 1024 * plain.layers(i).grad_norm());
  }
}

// float16 with a scale of 2^30: dL/dh overflows, the scaler halves it and skips each step until
// the gradients fit, then grows it after `interval` clean steps, as torch's GradScaler does.
TEST(LossScale, DynamicScalerBacksOffSkipsAndGrows) {
  const auto t = run("dtype: FLOAT16 network { depth: 4 width: 8 activation { name: \"tanh\" } }"
                     " train { steps: 40 lr: 0.001 }"
                     " mitigations { name: \"loss_scale\" params { name: \"scale\" number: 1073741824 }"
                     " params { name: \"interval\" number: 5 } }");
  ASSERT_EQ(t.steps_size(), 40);
  double expected_scale = 1073741824;
  int clean = 0, backoffs = 0, growths = 0;
  for (const auto& s : t.steps()) {
    EXPECT_EQ(s.loss_scale(), expected_scale) << s.step();
    EXPECT_EQ(s.skipped(), s.overflow()) << s.step();
    if (s.overflow()) {
      expected_scale *= 0.5, clean = 0, ++backoffs;
    } else if (++clean == 5) {
      expected_scale *= 2, clean = 0, ++growths;
    }
  }
  EXPECT_GE(backoffs, 10);  // 2^30 * 8e-3-sized gradients exceed 65504 until the scale is ~2^20
  EXPECT_GE(growths, 1);
  int events = 0;
  for (const auto& e : t.events()) events += e.mitigation() == "loss_scale";
  EXPECT_EQ(events, backoffs + growths);
}

}  // namespace
}  // namespace gradsim

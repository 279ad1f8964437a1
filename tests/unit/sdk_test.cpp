// The SDK's compute (products, maps, norms, sampler) as the gradsim library provides it, and
// what plugins expose to the core: an activation's scalar functions and kinks, an
// initialiser's variances, declared defaults.
#include <gmock/gmock.h>

#include <gradsim/gradsim.hpp>

#include "../common.hpp"

namespace gradsim {
namespace {

TEST(Compute, MatmulComputesEveryTransposeAndAccumulates) {
  Rng rng(1);
  Matrix<double> a(4, 3), b(3, 5), c;
  rng.fill_normal(a), rng.fill_normal(b);
  const Matrix<double> ab = a * b;
  matmul(a, b, c);
  EXPECT_LT((c - ab).norm(), 1e-14);
  const Matrix<double> at = a.transpose(), bt = b.transpose();
  matmul(at, b, c, {.transpose_a = true});
  EXPECT_LT((c - ab).norm(), 1e-14);
  matmul(a, bt, c, {.transpose_b = true});
  EXPECT_LT((c - ab).norm(), 1e-14);
  matmul(at, bt, c, {.transpose_a = true, .transpose_b = true, .accumulate = true});
  EXPECT_LT((c - 2 * ab).norm(), 1e-13);
}

// bfloat16 has 8 significant bits: summing 256 ones and then 1 + 2^-8 products rounded after
// every step would stall; accumulating in float32 and rounding once gives the float32 result.
TEST(Compute, SixteenBitProductsAccumulateInFloat32) {
  Matrix<bfloat16> a = Matrix<bfloat16>::Constant(1, 300, bfloat16(1.0f)), b = Matrix<bfloat16>::Constant(300, 1, bfloat16(1.0f)), c;
  matmul(a, b, c);
  EXPECT_EQ(float(c(0, 0)), float(bfloat16(300.0f)));  // 300 rounds to 300 in bfloat16; a bf16 running sum stops at 256
}

TEST(Compute, MapsAndNormsRunOverWholeArrays) {
  const auto tanh = test::builtins().get(Kind::activation, "tanh").info->make<float16>().activation(Params{});
  const auto& act = *tanh;
  Matrix<float16> h(2, 3), a, da = Matrix<float16>::Ones(2, 3), dh;
  h << float16(0.5f), float16(-1), float16(2), float16(0), float16(3), float16(-0.25f);
  act.forward(h, a);
  act.backward(h, a, da, dh);
  for (Eigen::Index i = 0; i < h.size(); ++i) {
    const float t = std::tanh(float(h(i)));
    EXPECT_EQ(float(a(i)), float(float16(t)));
    EXPECT_NEAR(float(dh(i)), 1 - t * t, 2e-3);
  }
  Matrix<float16> big = Matrix<float16>::Constant(4, 4, float16(60000.0f));  // ||big||^2 overflows float16
  EXPECT_DOUBLE_EQ(norm_f64(big), 4 * 60000.0);
  EXPECT_EQ(max_abs_f64(big), 60000.0);
}

TEST(Random, AStreamIsReproducibleAndStreamsDiffer) {
  Rng a(7, 1), b(7, 1), c(7, 2);
  Matrix<double> x(10, 10), y(10, 10), z(10, 10);
  a.fill_normal(x), b.fill_normal(y), c.fill_normal(z);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
  Matrix<float> f(10, 10);
  Rng(7, 1).fill_normal(f);  // the same draws, rounded to float
  EXPECT_EQ(f, x.cast<float>());
}

// The core reaches an activation's own scalar f and f' (theory integrates them); every
// built-in elementwise activation exposes them, a non-elementwise one says it has none.
TEST(Activation, ElementwiseActivationsExposeTheirScalarFunctionsAndKinks) {
  const auto cube = test::with_fixtures().get(Kind::activation, "cube").info->make<double>().activation(Params{});
  ASSERT_NE(cube->elementwise(), nullptr);
  EXPECT_EQ(cube->elementwise()->f_at(2.0), 8.0);
  EXPECT_EQ(cube->elementwise()->df_at(2.0), 12.0);
  for (const auto& e : test::builtins().entries()) {
    if (e.info->kind != Kind::activation) continue;
    const auto act = e.info->make<double>().activation(defaults_of(e.info->params));
    const auto* ew = act->elementwise();
    if (e.info->name == "softmax") {
      EXPECT_EQ(ew, nullptr);
      continue;
    }
    ASSERT_NE(ew, nullptr) << e.info->name;
    // f' against central differences of f, away from the kinks it declares.
    for (double x : {-2.3, -0.7, 0.4, 1.9}) {
      const double h = 1e-6, fd = (ew->f_at(x + h) - ew->f_at(x - h)) / (2 * h);
      EXPECT_NEAR(ew->df_at(x), fd, 1e-6 * std::max(1.0, std::fabs(fd))) << e.info->name << " at " << x;
    }
    // Where f' jumps by more than rounding, a kink must be declared.
    for (double x : {-1.0, 0.0, 1.0}) {
      const double jump = std::fabs(ew->df_at(x + 1e-9) - ew->df_at(x - 1e-9));
      const bool declared = std::count(ew->kinks.begin(), ew->kinks.end(), x) > 0;
      if (jump > 1e-6) EXPECT_TRUE(declared) << e.info->name << " jumps at " << x;
    }
  }
  const auto relu = test::builtins().get(Kind::activation, "relu").info->make<double>().activation(Params{});
  EXPECT_THAT(relu->elementwise()->kinks, ::testing::ElementsAre(0.0));
}

TEST(Initializer, EveryBuiltinDeclaresItsVariancesOrSaysItHasNone) {
  for (const auto& e : test::builtins().entries()) {
    if (e.info->kind != Kind::initializer) continue;
    const auto v = e.info->initializer(defaults_of(e.info->params))->variances(100, 50);
    if (e.info->name == "identity") EXPECT_FALSE(v) << "identity is not random";
    else EXPECT_TRUE(v) << e.info->name;
  }
  Params p = defaults_of(test::builtins().get(Kind::initializer, "gaussian").info->params);
  p.set("gain", {2.0, ""}), p.set("bias_std", {0.5, ""});
  const auto v = test::builtins().get(Kind::initializer, "gaussian").info->initializer(p)->variances(100, 50);
  EXPECT_EQ(v->sigma_w2, 4.0);
  EXPECT_EQ(v->sigma_b2, 0.25);
}

TEST(Params, DefaultsOfFillsEveryDeclaredParameter) {
  const auto& info = *test::builtins().get(Kind::mitigation, "loss_scale").info;
  const Params p = defaults_of(info.params);
  EXPECT_EQ(p.text("mode"), "dynamic");
  EXPECT_EQ(p.number("scale"), 65536.0);
  EXPECT_EQ(p.integer("interval"), 2000);
}

}  // namespace
}  // namespace gradsim

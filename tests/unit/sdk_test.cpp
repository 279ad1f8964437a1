// The SDK's compute (products, maps, norms, sampler) as the gradsim library provides it, and
// what plugins expose to the core: an activation's scalar functions and kinks, an
// initialiser's variances, declared defaults.
#include <gmock/gmock.h>

#include <atomic>
#include <random>
#include <thread>

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

// Small a^T b transposes a first (in 8 x 8 or 4 x 4 tiles, then the edges): every shape,
// tiles and edges, gives a^T b as float64 computes it, within the format's rounding (a value
// the transpose put in a wrong place is off by about its own size).
template <class T>
void expect_transposed_products_right() {
  Rng rng(2);
  for (const auto& [rows, cols] : {std::pair{32, 32}, {37, 13}, {8, 3}, {5, 9}, {64, 40}, {1, 17}}) {
    Matrix<double> a(rows, cols), b(rows, 7);
    rng.fill_normal(a), rng.fill_normal(b);
    a = a.cast<T>().template cast<double>(), b = b.cast<T>().template cast<double>();  // exact in T
    const Matrix<T> at = a.cast<T>(), bt = b.cast<T>();
    Matrix<T> c;
    matmul(at, bt, c, {.transpose_a = true});
    const Matrix<double> ref = a.transpose() * b;
    EXPECT_LT((c.template cast<double>() - ref).norm(), 1e-5 * ref.norm()) << rows << " x " << cols;
    Matrix<T> bias = Matrix<T>::Zero(cols, 7);
    bias(cols - 1, 6) = T(1);  // the last value: an edge element placed wrong would move it
    matmul(at, bt, bias, {.transpose_a = true, .accumulate = true});
    EXPECT_NEAR(double(bias(cols - 1, 6)), ref(cols - 1, 6) + 1, 1e-4) << rows << " x " << cols;
  }
}
TEST(Compute, SmallTransposedProductsAreRightForEveryShape) {
  expect_transposed_products_right<float>();
  expect_transposed_products_right<double>();
}

// A bias's gradient: column sums added to what is there, for every format and for column
// lengths on and off the eight lanes.
TEST(Compute, AddColumnSumsAddsEachColumnsSum) {
  Rng rng(3);
  for (const Eigen::Index rows : {1, 7, 8, 32, 37}) {
    Matrix<double> m(rows, 5);
    rng.fill_normal(m);
    const Matrix<double> want = m.colwise().sum().array() + 1;
    Matrix<double> d = Matrix<double>::Ones(1, 5);
    add_column_sums(m, d);
    EXPECT_LT((d - want).norm(), 1e-13) << rows;
    const Matrix<float> mf = m.cast<float>();
    Matrix<float> f = Matrix<float>::Ones(1, 5);
    add_column_sums(mf, f);
    EXPECT_LT((f.cast<double>() - want).norm(), 1e-5) << rows;
    const Matrix<float16> mh = m.cast<float16>();
    Matrix<float16> h = Matrix<float16>::Ones(1, 5);
    add_column_sums(mh, h);
    EXPECT_LT((h.cast<double>() - want).norm(), 0.05) << rows;
  }
}

// bfloat16 has 8 significant bits: summing 256 ones and then 1 + 2^-8 products rounded after
// every step would stall; accumulating in float32 and rounding once gives the float32 result.
TEST(Compute, SixteenBitProductsAccumulateInFloat32) {
  Matrix<bfloat16> a = Matrix<bfloat16>::Constant(1, 300, bfloat16(1.0f)), b = Matrix<bfloat16>::Constant(300, 1, bfloat16(1.0f)), c;
  matmul(a, b, c);
  EXPECT_EQ(float(c(0, 0)), float(bfloat16(300.0f)));  // 300 rounds to 300 in bfloat16; a bf16 running sum stops at 256
}

// Products run in OpenBLAS, and simulations call it from several threads at once: each result
// must be the one a single thread gets. (Debian's serial OpenBLAS shares one work buffer
// between threads and fails this, with these shapes, hundreds of times.)
TEST(Compute, ProductsFromManyThreadsAtOnceAreTheSingleThreadResults) {
  Rng rng(5);
  Matrix<float> a(64, 128), b(128, 128), ref;
  rng.fill_normal(a), rng.fill_normal(b);
  matmul(a, b, ref);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      Matrix<float> c;
      for (int r = 0; r < 1000; ++r) matmul(a, b, c), wrong += c != ref;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, 0);
}

// Q of A = Q R with R's diagonal positive: Q^T Q = I and R = Q^T A upper triangular with a
// positive diagonal reproduce A; a wide matrix is refused.
TEST(Compute, OrthonormalizeGivesTheQWithAPositiveR) {
  Rng rng(4, 5);
  Matrix<double> a(70, 40);
  rng.fill_normal(a);
  Matrix<double> q = a;
  orthonormalize(q);
  EXPECT_LT((q.transpose() * q - Matrix<double>::Identity(40, 40)).cwiseAbs().maxCoeff(), 1e-13);
  const Matrix<double> r = q.transpose() * a;
  for (Eigen::Index j = 0; j < 40; ++j) {
    EXPECT_GT(r(j, j), 0) << j;
    for (Eigen::Index i = j + 1; i < 40; ++i) EXPECT_NEAR(r(i, j), 0, 1e-12) << i << " " << j;
  }
  EXPECT_LT((q * r - a).cwiseAbs().maxCoeff(), 1e-12);
  Matrix<double> wide(3, 5);
  EXPECT_THROW(orthonormalize(wide), std::invalid_argument);
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

// exp, expm1 and tanh (vmath.hpp, what gradsim::fn uses) against the C library's long double
// functions, at 10^6 points log-spread over 1e-8 <= |x| <= 800, within the ulp vmath.hpp
// states; and their limits.
TEST(Vmath, WithinTheStatedUlpOfTheCLibrary) {
  auto ulps = [](double got, long double ref) {
    const double r = double(ref), step = std::nextafter(std::fabs(r), INFINITY) - std::fabs(r);
    return got == r ? 0.0 : double(std::fabs((long double)got - ref) / step);
  };
  std::mt19937_64 gen(1);
  std::uniform_real_distribution<double> sign(-1, 1), decade(-8, 2.9);
  double worst[3] = {};
  for (int i = 0; i < 1000000; ++i) {
    const double x = (sign(gen) < 0 ? -1 : 1) * std::pow(10.0, decade(gen));
    worst[0] = std::max(worst[0], ulps(vmath::exp(x), std::exp((long double)x)));
    worst[1] = std::max(worst[1], ulps(vmath::expm1(x), std::expm1((long double)x)));
    worst[2] = std::max(worst[2], ulps(vmath::tanh(x), std::tanh((long double)x)));
  }
  EXPECT_LE(worst[0], 2.0);
  EXPECT_LE(worst[1], 3.0);
  EXPECT_LE(worst[2], 3.5);
  // float32 through float64: the correctly rounded value, or 1 ulp off.
  std::uniform_real_distribution<float> fx(-12, 12);
  for (int i = 0; i < 100000; ++i) {
    const float x = fx(gen), got = fn::tanh(x), ref = float(std::tanh((long double)x));
    EXPECT_LE(std::fabs(got - ref), std::nextafter(std::fabs(ref), INFINITY) - std::fabs(ref)) << x;
  }
  EXPECT_TRUE(std::isnan(vmath::exp(NAN)) && std::isnan(vmath::expm1(NAN)) && std::isnan(vmath::tanh(NAN)));
  EXPECT_EQ(vmath::exp(INFINITY), INFINITY);
  EXPECT_EQ(vmath::exp(710.0), INFINITY);
  EXPECT_EQ(vmath::exp(-INFINITY), 0.0);
  EXPECT_EQ(vmath::exp(-745.1), std::exp(-745.1));  // the smallest subnormal
  EXPECT_EQ(vmath::exp(-700.5), std::exp(-700.5));
  EXPECT_EQ(vmath::expm1(-INFINITY), -1.0);
  EXPECT_EQ(vmath::tanh(INFINITY), 1.0);
  EXPECT_EQ(vmath::tanh(-1e300), -1.0);
  EXPECT_TRUE(std::signbit(vmath::tanh(-0.0)));
}

// The ziggurat sampler, over 2^20 draws: the moments of N(0, 1) within 5 standard errors
// (mean: 1/sqrt(n); variance: sqrt(2/n); fourth moment 3: sqrt(96/n)), neighbouring values
// uncorrelated, and the tails beyond 3 sigma (P = 0.0026998) and beyond 3.8 sigma (P =
// 1.44696e-4, past the ziggurat's base layer at r = 3.654, drawn by its own tail algorithm)
// within 5 standard errors.
TEST(Random, FillNormalDrawsTheStandardNormalLaw) {
  const int n = 1 << 20;
  Matrix<double> z(n, 1);
  Rng(11).fill_normal(z);
  double m1 = 0, m2 = 0, m4 = 0, pair = 0, tail = 0, far = 0;
  for (int i = 0; i < n; ++i) {
    const double v = z(i);
    m1 += v, m2 += v * v, m4 += v * v * v * v, tail += std::fabs(v) > 3, far += std::fabs(v) > 3.8;
    if (i % 2 == 0) pair += v * z(i + 1);
  }
  m1 /= n, m2 /= n, m4 /= n, pair /= n / 2, tail /= n, far /= n;
  EXPECT_LT(std::fabs(m1), 5 / std::sqrt(n));
  EXPECT_LT(std::fabs(m2 - 1), 5 * std::sqrt(2.0 / n));
  EXPECT_LT(std::fabs(m4 - 3), 5 * std::sqrt(96.0 / n));
  EXPECT_LT(std::fabs(pair), 5 / std::sqrt(n / 2));
  const double p = 0.0026997960632601866;
  EXPECT_LT(std::fabs(tail - p), 5 * std::sqrt(p * (1 - p) / n));
  const double q = 1.44696e-4;  // 2 (1 - Phi(3.8))
  EXPECT_LT(std::fabs(far - q), 5 * std::sqrt(q * (1 - q) / n));
}

// Value i of a fill depends only on the stream's state and i: not on the matrix's size, nor on
// the chunks the library makes it in (512 values), and a fill moves the stream on by one draw.
TEST(Random, FillNormalValueIDependsOnlyOnTheStreamAndI) {
  Matrix<double> big(1537, 1), odd(1025, 1), small(3, 1);
  Rng(4, 9).fill_normal(big);
  Rng(4, 9).fill_normal(odd);
  Rng(4, 9).fill_normal(small);
  EXPECT_EQ(odd, big.topRows(1025));
  EXPECT_EQ(small, big.topRows(3));
  Rng a(4, 9), b(4, 9);
  a.fill_normal(small);
  b.next();
  EXPECT_EQ(a.next(), b.next());
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
    // f' from x and y = f(x), where the plugin has it, is exactly f'(x).
    if (ew->df_xy)
      for (double x : {-3.1, -0.7, -1e-3, 0.0, 0.4, 2.5, 9.0}) {
        const double y = ew->f_at(x);
        double from_xy;
        ew->df_xy(ew->fn, &x, &y, &from_xy, 1);
        EXPECT_EQ(from_xy, ew->df_at(x)) << e.info->name << " at " << x;
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

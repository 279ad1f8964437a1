// Mean-field theory (theory/meanfield.hpp): closed forms, quadrature against an independent
// reference for every built-in activation, fixed points and the edge of chaos.
#include <cmath>
#include <memory>

#include <boost/math/quadrature/exp_sinh.hpp>
#include <boost/math/quadrature/tanh_sinh.hpp>
#include <gtest/gtest.h>

#include "../common.hpp"
#include "theory/batchnorm.hpp"
#include "theory/meanfield.hpp"

namespace gradsim::theory {
namespace {

// An activation of the built-in plugins, in float64, kept alive with its Phi.
struct Loaded {
  std::unique_ptr<Activation<double>> act;
  Phi phi;
};
Loaded load(const std::string& name) {
  const auto* info = test::builtins().get(Kind::activation, name).info;
  auto act = info->make<double>().activation(defaults_of(info->params));
  const auto* e = act->elementwise();
  Phi phi = Phi::of(*e);
  return {std::move(act), std::move(phi)};
}

const std::vector<double> kQs{1e-3, 1e-2, 0.1, 0.5, 1, 2, 10, 100, 1e3};

// Relative error, with a floor for values that are 0.
double rel(double got, double want) { return std::fabs(got - want) / std::max(std::fabs(want), 1e-300); }

TEST(Theory, LinearAndReluMatchTheirClosedForms) {
  auto lin = load("linear"), relu = load("relu");
  for (double w2 : {0.5, 1.0, 1.7, 2.0, 3.0})
    for (double q : kQs) {
      EXPECT_LT(rel(Maps{lin.phi, w2, 0}.chi(q), w2), 1e-10) << w2 << " " << q;
      EXPECT_LT(rel(Maps{relu.phi, w2, 0}.chi(q), w2 / 2), 1e-10) << w2 << " " << q;
      EXPECT_LT(rel(Maps{relu.phi, w2, 0.3}.q_next(q), w2 * q / 2 + 0.3), 1e-10) << w2 << " " << q;
    }
  // q* = sigma_b2 / (1 - sigma_w2 / 2) for relu, sigma_b2 / (1 - sigma_w2) for linear.
  for (double w2 : {0.5, 1.0, 1.5, 1.9}) {
    EXPECT_LT(rel(analyse(relu.phi, w2, 0.2).q_star, 0.2 / (1 - w2 / 2)), 1e-10) << w2;
    if (w2 < 1) EXPECT_LT(rel(analyse(lin.phi, w2, 0.2).q_star, 0.2 / (1 - w2)), 1e-10) << w2;
  }
  EXPECT_EQ(analyse(relu.phi, 2.5, 0.2).q_star, INFINITY);  // grows without bound
  EXPECT_EQ(analyse(relu.phi, 1.5, 0).q_star, 0);           // shrinks to 0
  EXPECT_EQ(analyse(relu.phi, 2, 0, 3.0).q_star, 3.0);      // every length is fixed
  EXPECT_EQ(analyse(relu.phi, 2, 0).phase, "critical");
  // From an input of length 0 the map moves first to q_next(0) = sigma_w2 phi(0)^2 + sigma_b2.
  auto sigmoid = load("sigmoid");
  EXPECT_LT(rel(analyse(sigmoid.phi, 1, 0, 0).q_star, analyse(sigmoid.phi, 1, 0, 1).q_star), 1e-10);
  EXPECT_GT(analyse(sigmoid.phi, 1, 0, 0).q_star, 0.25);  // above q_next(0): the map is increasing
}

// The arc-cosine kernel (Cho & Saul 2009): relu's two-point integrals, cut at relu's kink.
TEST(Theory, ReluCorrelationsMatchTheArcCosineKernel) {
  auto relu = load("relu");
  for (double q : {1e-3, 1.0, 1e3})
    for (double c : {-0.9, 0.0, 0.5, 0.99, 0.999999}) {
      const double t = std::acos(c);
      const double k1 = q / (2 * M_PI) * (std::sin(t) + (M_PI - t) * c), k0 = (M_PI - t) / (2 * M_PI);
      EXPECT_LT(rel(expect2(relu.phi.f, relu.phi.f, q, c, relu.phi.kinks), k1), 1e-10) << q << " " << c;
      EXPECT_LT(rel(expect2(relu.phi.df, relu.phi.df, q, c, relu.phi.kinks), k0), 1e-10) << q << " " << c;
    }
}

// erf's integrals are the arcsine kernel (Williams 1997):
//   E[erf(u1) erf(u2)] = 2/pi asin(2 q c / (1 + 2 q)),  E[erf'(u1) erf'(u2)] = 4/pi / sqrt((1+2q)^2 - 4 q^2 c^2).
double erf_k(double q, double c) { return 2 / M_PI * std::asin(2 * q * c / (1 + 2 * q)); }
double erf_dk(double q, double c) { return 4 / M_PI / std::sqrt((1 + 2 * q) * (1 + 2 * q) - 4 * q * q * c * c); }

TEST(Theory, ErfMatchesTheArcsineKernel) {
  auto e = load("erf");
  for (double q : kQs) {
    EXPECT_LT(rel(Maps{e.phi, 1, 0}.q_next(q), erf_k(q, 1)), 1e-10) << q;
    EXPECT_LT(rel(Maps{e.phi, 1, 0}.chi(q), erf_dk(q, 1)), 1e-10) << q;
    for (double c : {-0.9, 0.0, 0.5, 0.99}) {
      if (c != 0) EXPECT_LT(rel(expect2(e.phi.f, e.phi.f, q, c, {}), erf_k(q, c)), 1e-10) << q << " " << c;
      EXPECT_LT(rel(expect2(e.phi.df, e.phi.df, q, c, {}), erf_dk(q, c)), 1e-10) << q << " " << c;
    }
  }
  EXPECT_LT(std::fabs(expect2(e.phi.f, e.phi.f, 1.0, 0.0, {})), 1e-14);  // odd: cancels exactly
}

// The chaotic phase's correlation fixed point, against the closed-form kernel solved here by
// plain bisection.
TEST(Theory, ErfChaoticFixedPointMatchesTheClosedForm) {
  auto e = load("erf");
  const double w2 = 4, b2 = 0.1;
  double q = 1;  // q* by plain iteration of the closed-form length map
  for (int i = 0; i < 2000; ++i) q = w2 * erf_k(q, 1) + b2;
  double lo = 0, hi = 1 - 1e-9;  // G(c) = (w2 k(c) + b2)/q - c: > 0 at 0, < 0 just below 1
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    ((w2 * erf_k(q, mid) + b2) / q - mid > 0 ? lo : hi) = mid;
  }
  const auto p = analyse(e.phi, w2, b2);
  EXPECT_EQ(p.phase, "chaotic");
  EXPECT_LT(rel(p.q_star, q), 1e-10);
  EXPECT_LT(rel(p.chi_1, w2 * erf_dk(q, 1)), 1e-10);
  EXPECT_LT(rel(p.c_star, lo), 1e-8);
  EXPECT_LT(rel(p.chi_c, w2 * erf_dk(q, lo)), 1e-8);
  EXPECT_LT(rel(p.xi_c, -1 / std::log(w2 * erf_dk(q, lo))), 1e-7);
}

// An independent reference: tanh-sinh / exp-sinh quadrature in x (not z), over the real line
// cut at the kinks, at a tolerance near machine precision.
double reference(const std::function<double(double)>& g, double q, std::vector<double> cuts) {
  const double s = std::sqrt(q);
  auto w = [&](double x) { return g(x) * std::exp(-0.5 * x * x / q) / (s * std::sqrt(2 * M_PI)); };
  cuts.push_back(0);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  boost::math::quadrature::tanh_sinh<double> ts;
  boost::math::quadrature::exp_sinh<double> es;
  double sum = es.integrate([&](double t) { return w(cuts.front() - t); }, 0.0, INFINITY, 1e-15) +
               es.integrate([&](double t) { return w(cuts.back() + t); }, 0.0, INFINITY, 1e-15);
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k) sum += ts.integrate(w, cuts[k], cuts[k + 1], 1e-15);
  return sum;
}

TEST(Theory, QuadratureAgreesWithAnIndependentReferenceForEveryBuiltinActivation) {
  std::size_t checked = 0;
  for (const auto& entry : test::builtins().entries()) {
    if (entry.info->kind != Kind::activation) continue;
    auto act = entry.info->make<double>().activation(defaults_of(entry.info->params));
    const auto* e = act->elementwise();
    if (!e) continue;  // softmax
    const Phi phi = Phi::of(*e);
    for (double q : kQs) {
      for (const auto& integrand : {std::pair<const char*, std::function<double(double)>>{
                                        "phi^2", [&](double x) { return phi.f(x) * phi.f(x); }},
                                    {"phi'^2", [&](double x) { return phi.df(x) * phi.df(x); }},
                                    {"phi", phi.f}}) {
        const char* what = integrand.first;
        const auto& g = integrand.second;  // (clang cannot capture a structured binding)
        const double got = expect(g, q, phi.kinks), want = reference(g, q, phi.kinks);
        // Relative to E|g|, since E[phi] may cancel to 0 (odd activations).
        const double scale = std::max(std::fabs(want), expect([&](double x) { return std::fabs(g(x)); }, q, phi.kinks));
        EXPECT_LT(std::fabs(got - want) / scale, 1e-12) << entry.info->name << " " << what << " at q = " << q;
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 12u);
}

// A custom activation from a plugin library (the SDK's cube example, f = x^3): theory uses its
// own f and f', so E[f(sqrt(q) z)^2] = 15 q^3 and E[f'^2] = 27 q^2 hold to rounding.
TEST(Theory, ACustomActivationGetsItsTheory) {
  const auto* info = test::with_fixtures().get(Kind::activation, "cube").info;
  const auto act = info->make<double>().activation(defaults_of(info->params));
  const Phi phi = Phi::of(*act->elementwise());
  for (double q : kQs) {
    EXPECT_LT(rel(Maps{phi, 0.7, 0.1}.q_next(q), 0.7 * 15 * q * q * q + 0.1), 1e-10) << q;
    EXPECT_LT(rel(Maps{phi, 0.7, 0}.chi(q), 0.7 * 27 * q * q), 1e-10) << q;
  }
}

TEST(Theory, EdgeOfChaosByRootFinding) {
  auto tanh = load("tanh"), relu = load("relu");
  // tanh without bias: q* = 0 below sigma_w2 = 1, so chi_1 = sigma_w2 phi'(0)^2 = sigma_w2; just
  // above, chi_1 = 1 + (sigma_w2 - 1)^2 / 3 + ..., which the quadrature resolves only from
  // sigma_w2 - 1 ~ 1e-6 on.
  EXPECT_NEAR(*critical_weight_variance(tanh.phi, 0), 1.0, 1e-6);
  EXPECT_EQ(analyse(tanh.phi, 0.99, 0).phase, "ordered");
  EXPECT_EQ(analyse(tanh.phi, 1.01, 0).phase, "chaotic");
  EXPECT_EQ(analyse(tanh.phi, 1.01, 0).c_star, 0);  // odd, no bias: uncorrelated inputs stay so
  // relu: chi_1 = sigma_w2 / 2 at any length.
  for (double b2 : {0.0, 0.05, 1.0}) EXPECT_NEAR(*critical_weight_variance(relu.phi, b2), 2.0, 1e-9) << b2;
  // tanh with bias: at the root, chi_1 = 1 - checked with q* from plain iteration of the map.
  for (double b2 : {0.01, 0.05, 0.3}) {
    const double w2 = *critical_weight_variance(tanh.phi, b2);
    const Maps m{tanh.phi, w2, b2};
    double q = 1;
    for (int i = 0; i < 300; ++i) q = m.q_next(q);  // converges geometrically with a bias
    EXPECT_NEAR(m.chi(q), 1.0, 1e-9) << b2;
    EXPECT_GT(w2, 1.0);
    EXPECT_EQ(analyse(tanh.phi, w2 * 0.9, b2).phase, "ordered");
    EXPECT_EQ(analyse(tanh.phi, w2 * 1.1, b2).phase, "chaotic");
  }
  EXPECT_NEAR(*critical_weight_variance(load("linear").phi, 0.1), 1.0, 1e-9);
}

// Batch norm before a linear activation: every sample gives tr = B - 2 and a = B/(B-1), so
// lambda = (B-2)/(B-3) exactly; relu's lambda falls towards the infinite-batch pi/(pi-1) as
// the batch grows, before and after the activation.
TEST(Theory, BatchNormGrowthAtFiniteBatch) {
  auto lin = load("linear"), relu = load("relu");
  for (std::size_t b : {8, 64}) {
    const auto e = batch_norm_growth(lin.phi, b, true, 1, 0, 1 << 12);
    EXPECT_NEAR(e.value, (double(b) - 2) / (double(b) - 3), 1e-12) << b;
  }
  GRADSIM_SKIP_IF_SANITIZED("the Monte Carlo statistics below take half a minute under the sanitizers; the exact "
                              "linear case above runs the same code");
  const double inf = M_PI / (M_PI - 1);
  for (bool before : {true, false}) {
    const auto b64 = batch_norm_growth(relu.phi, 64, before), b1024 = batch_norm_growth(relu.phi, 1024, before, 1, 0, 1 << 15);
    EXPECT_GT(b64.value - 4 * b64.error, b1024.value + 4 * b1024.error) << before;
    EXPECT_NEAR(b1024.value, inf, 0.003) << before;  // O(1/B) above the limit
    EXPECT_GT(b1024.value, inf - 4 * b1024.error) << before;
  }
  // Homogeneous relu without bias: sigma_w2 cancels after the activation too.
  EXPECT_NEAR(batch_norm_growth(relu.phi, 64, false, 3.0, 0, 1 << 14).value,
              batch_norm_growth(relu.phi, 64, false, 1.0, 0, 1 << 14).value, 1e-9);
}

}  // namespace
}  // namespace gradsim::theory

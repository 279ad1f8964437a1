#include "theory/meanfield.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <boost/math/quadrature/gauss_kronrod.hpp>
#include <boost/math/tools/toms748_solve.hpp>

namespace gradsim::theory {

namespace {

constexpr double kZ = 13;            // the normal law beyond |z| = 13 weighs 1.2e-38
constexpr int kMaxSplits = 400;     // pieces halved, at most
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kLargeQ = 1e12, kSmallQ = 1e-30;  // beyond these, q* is taken as inf or 0

using GK = boost::math::quadrature::gauss_kronrod<double, 31>;

double normal_pdf(double z) { return 0.3989422804014326779 * std::exp(-0.5 * z * z); }

// Globally adaptive Gauss-Kronrod (as QUADPACK's qags without extrapolation): the pieces
// between the cuts, then the piece with the largest error estimate halved until the estimates
// sum to `tolerance` times the integral of |f|. (Boost's own adaptive routine asks each piece
// for a tolerance relative to its own estimate, which never ends on a piece whose integral
// cancels to 0, as an odd function's does.)
struct Piece {
  double a, b, value, error, l1;
  bool operator<(const Piece& o) const { return error < o.error; }
};

template <class F>
Piece kronrod(const F& f, double a, double b) {
  double error = 0, l1 = 0;
  const double value = GK::integrate(f, a, b, 0, 0.0, &error, &l1);
  return {a, b, value, error * 0.5 * (b - a), l1};  // Boost's error is for [-1, 1]: scale it
}

// The integral of f over [-kZ, kZ], split at `cuts`.
template <class F>
double integrate(const F& f, std::vector<double> cuts, double tolerance) {
  cuts.push_back(-kZ), cuts.push_back(kZ);
  std::erase_if(cuts, [](double z) { return !(std::fabs(z) <= kZ); });
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::vector<Piece> heap;
  double error = 0, l1 = 0;
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
    heap.push_back(kronrod(f, cuts[k], cuts[k + 1]));
    error += heap.back().error, l1 += heap.back().l1;
  }
  std::make_heap(heap.begin(), heap.end());
  for (int split = 0; error > tolerance * l1 && split < kMaxSplits; ++split) {
    std::pop_heap(heap.begin(), heap.end());
    const Piece worst = heap.back();
    heap.pop_back();
    const double mid = 0.5 * (worst.a + worst.b);
    for (const Piece& p : {kronrod(f, worst.a, mid), kronrod(f, mid, worst.b)}) {
      error += p.error, l1 += p.l1;
      heap.push_back(p), std::push_heap(heap.begin(), heap.end());
    }
    error -= worst.error, l1 -= worst.l1;
  }
  double sum = 0;
  for (const auto& p : heap) sum += p.value;
  return sum;
}

// Where to cut [-kZ, kZ] for a function of x = centre + scale * z with kinks in x.
std::vector<double> cuts_for(double centre, double scale, const std::vector<double>& kinks) {
  std::vector<double> cuts{0, -1, 1, -4, 4};
  const double z0 = -centre / scale;  // where x = 0
  for (double s : {0.0, -1.0, 1.0, -4.0, 4.0}) cuts.push_back(z0 + s / scale);  // x in +-1, +-4
  for (double k : kinks) cuts.push_back((k - centre) / scale);
  return cuts;
}

}  // namespace

Phi Phi::of(const Elementwise<double>& e) {
  return {[&e](double x) { return e.f_at(x); }, [&e](double x) { return e.df_at(x); }, e.kinks};
}

double expect(const std::function<double(double)>& g, double q, const std::vector<double>& kinks, double tolerance) {
  const double s = std::sqrt(q);
  return integrate([&](double z) { return g(s * z) * normal_pdf(z); }, cuts_for(0, s, kinks), tolerance);
}

double expect2(const std::function<double(double)>& g1, const std::function<double(double)>& g2, double q, double c,
               const std::vector<double>& kinks, double tolerance) {
  const double s = std::sqrt(q), r = std::sqrt(std::max(0.0, 1 - c * c));
  if (r < 1e-8) return expect([&](double x) { return g1(x) * g2(c < 0 ? -x : x); }, q, kinks, tolerance);
  // u1 = s z1, u2 = s (c z1 + r z2): for each z1, an integral over z2 of g2 with its own cuts.
  auto inner = [&](double z1) {
    const double centre = s * c * z1;
    const double i = integrate([&](double z2) { return g2(centre + s * r * z2) * normal_pdf(z2); },
                               cuts_for(centre, s * r, kinks), 0.1 * tolerance);
    return g1(s * z1) * i * normal_pdf(z1);
  };
  return integrate(inner, cuts_for(0, s, kinks), tolerance);
}

double Maps::q_next(double q) const {
  return sigma_w2 * expect([&](double x) { const double y = phi.f(x); return y * y; }, q, phi.kinks) + sigma_b2;
}

double Maps::chi(double q) const {
  return sigma_w2 * expect([&](double x) { const double d = phi.df(x); return d * d; }, q, phi.kinks);
}

double Maps::c_next(double q, double c) const {
  return (sigma_w2 * expect2(phi.f, phi.f, q, c, phi.kinks) + sigma_b2) / q;
}

double Maps::chi_c(double q, double c) const { return sigma_w2 * expect2(phi.df, phi.df, q, c, phi.kinks); }

namespace {

// A root of f in [a, b] (f(a), f(b) of opposite signs), to about 50 bits.
template <class F>
double solve(const F& f, double a, double b) {
  boost::uintmax_t iterations = 200;
  const auto [lo, hi] = boost::math::tools::toms748_solve(f, a, b, boost::math::tools::eps_tolerance<double>(50), iterations);
  return 0.5 * (lo + hi);
}

double depth_scale(double chi) { return chi == 1 ? kInf : -1 / std::log(chi); }

}  // namespace

double fixed_length(const Maps& m, double q0) {
  q0 = std::max(q0, kSmallQ);  // from a zero input the map first moves to q_next(0)
  // The length map is increasing in q, so from q0 the iterates move monotonically to the
  // nearest fixed point in the direction of F(q0) = q_next(q0) - q0.
  auto F = [&](double q) {
    const double d = m.q_next(q) - q;
    return std::fabs(d) <= 1e-12 * q ? 0.0 : d;  // within the quadrature's accuracy
  };
  const double f0 = F(q0);
  if (f0 == 0) return q0;
  double near = q0, far = q0;
  for (;;) {
    far = f0 > 0 ? far * 4 : far / 4;
    if (far > kLargeQ) return kInf;
    if (far < kSmallQ) return 0;
    const double f = F(far);
    // Where the map is flat to the quadrature's accuracy (hard_tanh below its kinks, softplus
    // far above 0: q moves by less than 1e-12 q per layer) the search goes on through it, to
    // where it moves again or to 0 or inf.
    if (f != 0 && (f > 0) != (f0 > 0)) break;
    near = far;
  }
  return solve(F, std::min(near, far), std::max(near, far));
}

std::string phase_of(double chi_1) {
  return std::fabs(chi_1 - 1) <= 1e-9 ? "critical" : chi_1 < 1 ? "ordered" : "chaotic";
}

FixedPoint analyse(const Phi& phi, double sigma_w2, double sigma_b2, double q0, bool correlations) {
  const Maps m{phi, sigma_w2, sigma_b2};
  FixedPoint p;
  p.q_star = fixed_length(m, q0);
  p.chi_1 = m.chi(p.q_star == kInf ? kLargeQ : p.q_star == 0 ? 1e-200 : p.q_star);
  p.phase = phase_of(p.chi_1);
  p.xi_grad = p.phase == "critical" ? kInf : depth_scale(p.chi_1);
  p.c_star = p.chi_c = p.xi_c = NAN;
  if (!correlations || p.q_star == 0 || p.q_star == kInf) return p;
  if (p.phase != "chaotic") {
    // c = 1 is the stable fixed point, and the correlation map's slope there is chi_1.
    p.c_star = 1, p.chi_c = p.phase == "critical" ? 1 : p.chi_1;
  } else {
    // c = 1 is unstable; the stable fixed point lies where G(c) = c_next(c) - c falls
    // through 0 in [0, 1): G(0) >= 0 (the mean of phi squared), G(1 - d) ~ d (1 - chi_1) < 0.
    auto G = [&](double c) {
      const double d = m.c_next(p.q_star, c) - c;
      return std::fabs(d) <= 1e-10 ? 0.0 : d;
    };
    double top = 1 - 1e-4;
    while (G(top) >= 0 && top < 1 - 1e-9) top = 1 - (1 - top) / 10;
    p.c_star = G(0) == 0 ? 0 : G(top) >= 0 ? 1 : solve(G, 0.0, top);
    p.chi_c = m.chi_c(p.q_star, p.c_star);
  }
  p.xi_c = depth_scale(p.chi_c);
  return p;
}

std::optional<double> critical_weight_variance(const Phi& phi, double sigma_b2, double q0) {
  auto h = [&](double w2) {
    const Maps m{phi, w2, sigma_b2};
    const double q = fixed_length(m, q0);
    return m.chi(q == kInf ? kLargeQ : q == 0 ? 1e-200 : q) - 1;
  };
  double a = 1e-3, ha = h(a);
  if (ha == 0) return a;
  for (double b = 2 * a; b <= 1e4; a = b, b *= 2) {
    const double hb = h(b);
    if (hb == 0) return b;
    if ((ha > 0) != (hb > 0)) return solve(h, a, b);
    ha = hb;
  }
  return std::nullopt;
}

}  // namespace gradsim::theory

// Mean-field theory of wide networks at initialisation (Poole et al. 2016; Schoenholz et al.
// 2017), computed from an activation plugin's own f and f'.
//
// A dense layer h = x W + b with Var W_ij = sigma_w2 / fan_in and Var b_i = sigma_b2 maps the
// length q = E[h^2] of one input and the correlation c of two inputs' pre-activations to
//   q' = sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2                          (length map)
//   c' = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q*,  (u1, u2) ~ N(0, q* [[1 c][c 1]])
// and the gradient's squared norm by
//   chi(q) = sigma_w2 E[phi'(sqrt(q) z)^2]   per layer, backwards:  |dL/dh_l|^2 = chi(q_l) |dL/dh_l+1|^2.
// At the fixed point q*: chi_1 = chi(q*), chi_c = sigma_w2 E[phi'(u1) phi'(u2)] at c*, depth
// scales xi_c = -1/ln chi_c and xi_grad = -1/ln chi_1.
//
// Gaussian expectations are adaptive Gauss-Kronrod quadrature over z in [-13, 13] (the rest of
// the normal law weighs below 1e-38), split at 0, at +-1 and +-4 (the normal's scale), at the
// activation's declared kinks (where f' jumps) and at +-1/sqrt(q), +-4/sqrt(q) (the scale on
// which a bounded activation bends when q is large). Accuracy: see tests/unit/theory_test.cpp.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gradsim/activation.hpp>

namespace gradsim::theory {

/// An activation's scalar functions in float64, as theory sees them.
struct Phi {
  std::function<double(double)> f, df;
  std::vector<double> kinks;  ///< where f' jumps
  static Phi of(const Elementwise<double>& e);
};

/// E[g(sqrt(q) z)], z ~ N(0, 1); `kinks` are points of x = sqrt(q) z where g is not smooth.
/// `tolerance` is relative to E[|g|] on each piece.
double expect(const std::function<double(double)>& g, double q, const std::vector<double>& kinks,
              double tolerance = 1e-13);
/// E[g1(u1) g2(u2)], (u1, u2) ~ N(0, q [[1 c] [c 1]]), by nested quadrature.
double expect2(const std::function<double(double)>& g1, const std::function<double(double)>& g2, double q, double c,
               const std::vector<double>& kinks, double tolerance = 1e-11);

/// One layer's maps for an activation and weight/bias variances.
struct Maps {
  const Phi& phi;
  double sigma_w2, sigma_b2;
  double q_next(double q) const;           ///< the length map
  double chi(double q) const;              ///< sigma_w2 E[phi'(sqrt(q) z)^2]
  double c_next(double q, double c) const; ///< the correlation map at length q (a fixed point)
  double chi_c(double q, double c) const;  ///< its slope: sigma_w2 E[phi'(u1) phi'(u2)]
};

/// What theory says about one activation at (sigma_w2, sigma_b2).
struct FixedPoint {
  double q_star = 0;   ///< reached from q0; inf when the length grows without bound
  double chi_1 = 0;    ///< chi at q*; where q* is 0 or inf, its limit there
  double c_star = 0;   ///< NaN where undefined (q* = 0 or inf)
  double chi_c = 0;    ///< NaN where c* is
  double xi_c = 0, xi_grad = 0;  ///< -1/ln chi; inf at chi = 1
  std::string phase;   ///< "ordered" (chi_1 < 1), "chaotic" (> 1) or "critical"
};

/// The fixed point reached from input length q0 and everything at it. The correlation map
/// (c*, chi_c: a two-dimensional integral) only when `correlations`.
FixedPoint analyse(const Phi& phi, double sigma_w2, double sigma_b2, double q0 = 1, bool correlations = true);

/// The length q* that the length map reaches from q0 (monotone for every activation whose
/// E[phi^2] grows with q): 0 or inf where it tends there.
double fixed_length(const Maps& m, double q0);

/// sigma_w2 with chi_1 = 1 at this sigma_b2 (the edge of chaos), by root finding over
/// sigma_w2 in [1e-3, 1e4]; nullopt where chi_1 does not cross 1 there.
std::optional<double> critical_weight_variance(const Phi& phi, double sigma_b2, double q0 = 1);

/// "ordered", "chaotic" or "critical" (|chi_1 - 1| <= 1e-9).
std::string phase_of(double chi_1);

}  // namespace gradsim::theory

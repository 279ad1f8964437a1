// The plugin checks: every backward pass against central finite differences in float64, a
// layer applied twice in one pass, a mitigation's inserted layers and hooks inside a whole
// network, an initialiser against the variances it declares. `gradsim gradcheck` runs them
// on any plugin; gradsim's own test suite runs the very same functions on the built-ins.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <gradsim/plugin.hpp>

#include "plugin/registry.hpp"

namespace gradsim {

/// One checked quantity: passes when error <= tolerance.
struct CheckResult {
  std::string what;  ///< "dx", "dx (2nd call)", "W", "Var W 400x300", ...
  double error;      ///< relative error, or |ratio - 1| for statistics
  double tolerance;
  bool pass() const { return error <= tolerance; }  // false for NaN
};

/// Relative error of gradients from central differences with step 1e-6 in float64.
inline constexpr double kGradTolerance = 1e-6;

/// ||a - b||_F / max(||a||_F, ||b||_F, floor). The floor lets a gradient that is exactly 0
/// (a bias before batch norm) pass against central differences, whose rounding noise is about
/// 1e-16 |s| / eps = 1e-10 per entry for a function s of size 1: below 1e-6 * 1e-3.
double relative_error(const Matrix<double>& a, const Matrix<double>& b, double floor = 1e-3);

/// Central differences of the scalar s() with respect to every entry of x, which s reads, on
/// the five-point stencil (truncation error O(eps^4), so curvature does not pass for a bug):
///   g_i = (8 (s(x + eps e_i) - s(x - eps e_i)) - (s(x + 2 eps e_i) - s(x - 2 eps e_i))) / (12 eps).
/// x is left as it was.
template <class S>
Matrix<double> numeric_gradient(S&& s, Matrix<double>& x, double eps = 1e-5) {
  Matrix<double> g(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double xi = x(i);
    auto at = [&](double h) {
      x(i) = xi + h;
      return s();
    };
    const double d1 = at(eps) - at(-eps), d2 = at(2 * eps) - at(-2 * eps);
    x(i) = xi;
    g(i) = (8 * d1 - d2) / (12 * eps);
  }
  return g;
}

/// s = <u1, layer(x1)> + <u2, layer(x2)>: the layer applied twice, with random x, u and
/// weights; dx of each call and every weight's gradient (summed over both calls).
std::vector<CheckResult> check_layer(const Layer<double>& layer, std::size_t batch, std::size_t fan_in,
                                     std::size_t fan_out, Rng& rng);
/// s = <u, act(h)> with random h ~ N(0, 4) and u; and the activation's tangent, if it has one,
/// as the transpose of its backward: <u, tangent(v)> = <backward(u), v> for a random v.
std::vector<CheckResult> check_activation(const Activation<double>& act, std::size_t batch, std::size_t width, Rng& rng);
/// A recurrent cell: one step (ds_prev, dx and every weight), and the cell unrolled with shared
/// weights, 20 steps of one layer and 5 of two stacked layers (the initial state and every
/// weight, summed over the steps).
std::vector<CheckResult> check_cell(const PluginInfo& info, const Params& params, const Registry& registry, Rng& rng);
/// dL/dy at a random y.
CheckResult check_loss(Loss<double>& loss, std::size_t batch, std::size_t width, Rng& rng);
/// Sample mean and variance of weights and biases (400 x 300 and 300 x 400) against
/// variances(), within 5 standard errors (estimated from the draws); without declared
/// variances, that draws are finite and reproducible.
std::vector<CheckResult> check_initializer(const Initializer& init, std::uint64_t seed);
/// The layers a mitigation inserts at every site and its projection, then a whole network
/// (dense + tanh, depth 3, with a width change) with the mitigation: every weight gradient,
/// through loss scaling and the param_grads hook, against central differences of L passed
/// through the same hook; dL/dx likewise. Uses dense, tanh, gaussian and mse from `registry`.
std::vector<CheckResult> check_mitigation(const PluginInfo& info, const Params& params, const Registry& registry,
                                          std::uint64_t seed);

/// An optimiser has no backward pass; what any update rule must do instead, on the quadratic
/// L(w) = 1/2 sum a_i w_i^2 (a_i in [0.5, 2], w 4 x 3 from N(0, 1)): its first step goes
/// downhill (<update, dL/dw> <= 0), 50 steps at lr 0.01 lower L by at least 1 %, lr 0 leaves
/// w as it was, and its float32 steps follow its float64 ones (5 steps, relative 1e-4).
std::vector<CheckResult> check_optimizer(const PluginInfo& info, const Params& params, Rng& rng);

/// Every check that applies to the plugin's kind, with `params` (its defaults if null). A layer
/// is checked 5 -> 5 and 5 -> 4 (where it allows) on 3 rows, and 4 -> 4 on 6 rows in two
/// sequences of 3 tokens (LayerArgs::tokens: where attention mixes rows).
std::vector<CheckResult> check_plugin(const PluginInfo& info, const Registry& registry, std::uint64_t seed,
                                      const Params* params = nullptr);

}  // namespace gradsim

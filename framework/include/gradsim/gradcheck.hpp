// Finite-difference checks of a plugin's backward pass, in float64. gradsim's own tests run
// them over every built-in plugin; a plugin author can run them on theirs.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "activation.hpp"
#include "layer.hpp"
#include "loss.hpp"
#include "tensor.hpp"

namespace gradsim {

/// ||a - b||_F / max(||a||_F, ||b||_F, floor). The floor lets a gradient that is exactly 0
/// (a bias before batch norm) pass against central differences, whose rounding noise is about
/// 1e-16 |s| / eps = 1e-10 per entry for a function s of size 1: below 1e-6 * 1e-3.
inline double relative_error(const Matrix<double>& a, const Matrix<double>& b, double floor = 1e-3) {
  return (a - b).norm() / std::max({a.norm(), b.norm(), floor});
}

/// Central differences of the scalar s() with respect to every entry of x, which s reads:
///   g_i = (s(x + eps e_i) - s(x - eps e_i)) / (2 eps).   x is left as it was.
template <class S>
Matrix<double> numeric_gradient(S&& s, Matrix<double>& x, double eps = 1e-6) {
  Matrix<double> g(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double xi = x(i);
    x(i) = xi + eps;
    const double up = s();
    x(i) = xi - eps;
    const double down = s();
    x(i) = xi;
    g(i) = (up - down) / (2 * eps);
  }
  return g;
}

/// The relative error of one analytic gradient against central differences.
struct GradCheckResult {
  std::string what;  ///< "dx", "dh", "dy" or the parameter's name
  double error;
};

/// Checks layer.backward() for s(x, params) = <u, layer(x)> with random x, u and parameters:
/// ds/dx = backward(u) and ds/dW = the accumulated parameter gradients.
inline std::vector<GradCheckResult> check_layer(Layer<double>& layer, std::size_t batch,
                                                std::size_t fan_in, Rng& rng) {
  Matrix<double> x(batch, fan_in), h, dx;
  rng.fill_normal(x);
  auto params = layer.params();
  for (auto& p : params) rng.fill_normal(*p.value), p.grad->setZero();
  layer.forward(x, h);
  Matrix<double> u(h.rows(), h.cols());
  rng.fill_normal(u);
  layer.backward(u, dx);
  auto s = [&] {
    Matrix<double> out;
    layer.forward(x, out);
    return u.cwiseProduct(out).sum();
  };
  std::vector<GradCheckResult> out{{"dx", relative_error(dx, numeric_gradient(s, x))}};
  for (auto& p : params) out.push_back({p.name, relative_error(*p.grad, numeric_gradient(s, *p.value))});
  return out;
}

/// Checks act.backward() for s(h) = <u, act(h)> with random h and u.
inline GradCheckResult check_activation(Activation<double>& act, std::size_t batch,
                                        std::size_t width, Rng& rng) {
  Matrix<double> h(batch, width), a, u(batch, width), dh;
  rng.fill_normal(h, 2.0);
  rng.fill_normal(u);
  act.forward(h, a);
  act.backward(h, a, u, dh);
  auto s = [&] {
    Matrix<double> out;
    act.forward(h, out);
    return u.cwiseProduct(out).sum();
  };
  return {"dh", relative_error(dh, numeric_gradient(s, h))};
}

/// Checks loss.backward() against central differences of loss.forward() at a random y.
inline GradCheckResult check_loss(Loss<double>& loss, std::size_t batch, std::size_t width,
                                  Rng& rng) {
  Matrix<double> y(batch, width), dy;
  rng.fill_normal(y);
  loss.setup(batch, width, rng);
  loss.backward(y, dy);
  return {"dy", relative_error(dy, numeric_gradient([&] { return loss.forward(y); }, y))};
}

}  // namespace gradsim

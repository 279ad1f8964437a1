// What the built-in initialisers share: the recommended gain of a nonlinearity (as
// torch.nn.init.calculate_gain: the factor that keeps the variance of activations level through
// a layer of it), and Gaussian biases of a chosen standard deviation.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include <gradsim/gradsim.hpp>

namespace gradsim_plugins {

inline const std::vector<std::string> kNonlinearities = {"linear", "relu", "leaky_relu", "tanh", "sigmoid", "selu"};

inline double nonlinearity_gain(const std::string& nonlinearity, double slope) {
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + slope * slope));
  if (nonlinearity == "tanh") return 5.0 / 3;
  if (nonlinearity == "selu") return 0.75;
  return 1.0;  // linear, sigmoid
}

/// Biases ~ N(0, bias_std^2) (sigma_b^2 of mean-field theory); exactly 0 with bias_std = 0.
struct Bias {
  static gradsim::ParamDecl decl() {
    return gradsim::ParamDecl::real("bias_std", 0.0, 0.0, 1e6, "biases ~ N(0, bias_std^2); 0 (default): biases 0");
  }
  explicit Bias(const gradsim::Params& p) : std(p.number("bias_std")) {}
  void fill(gradsim::Matrix<double>& value, gradsim::Rng& rng) const {
    if (std > 0) rng.fill_normal(value, std);
    else value.setZero();
  }
  std::optional<double> normal_std() const { return std > 0 ? std::optional<double>(std) : std::nullopt; }
  double variance() const { return std * std; }
  double std;
};

}  // namespace gradsim_plugins

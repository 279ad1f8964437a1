// The recommended gain of a nonlinearity (as torch.nn.init.calculate_gain): the factor that
// keeps the variance of activations level through a layer of that nonlinearity.
#pragma once

#include <cmath>
#include <string>
#include <vector>

namespace gradsim_plugins {

inline const std::vector<std::string> kNonlinearities = {"linear", "relu", "leaky_relu", "tanh", "sigmoid", "selu"};

inline double nonlinearity_gain(const std::string& nonlinearity, double slope) {
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1 + slope * slope));
  if (nonlinearity == "tanh") return 5.0 / 3;
  if (nonlinearity == "selu") return 0.75;
  return 1.0;  // linear, sigmoid
}

}  // namespace gradsim_plugins

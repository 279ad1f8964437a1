// The Initializer interface: draws a layer's parameters.
#pragma once

#include <Eigen/Core>

#include "layer.hpp"
#include "tensor.hpp"

namespace gradsim {

/// Fills one parameter with its initial values. Values are drawn in float64 and then rounded
/// to the simulated format, so float64 and float16 runs of one seed start from the same weights.
class Initializer {
 public:
  virtual ~Initializer() = default;
  /// `value` has the parameter's shape; role and fans come from the layer's ParamRef.
  virtual void fill(ParamRole role, std::size_t fan_in, std::size_t fan_out,
                    Eigen::MatrixXd& value, Rng& rng) const = 0;
};

}  // namespace gradsim

// The Initializer interface: draws the weights and biases of layers.
#pragma once

#include <cstddef>
#include <optional>

#include "abi.hpp"
#include "layer.hpp"
#include "random.hpp"

namespace gradsim {

/// The variances an initialiser draws from, in mean-field form (Poole et al. 2016):
/// Var W_ij = sigma_w2 / fan_in, Var b_i = sigma_b2, every entry independent with mean 0.
struct Variances {
  double sigma_w2 = 0, sigma_b2 = 0;
};

/// Fills weights with their initial values. Values are drawn in float64 and then rounded to
/// the simulated format, so float64 and float16 runs of one seed start from the same weights.
class GRADSIM_EXPORT Initializer {
 public:
  virtual ~Initializer() = default;
  /// `value` has the weight's shape; role and fans come from the layer's WeightDecl.
  virtual void fill(WeightRole role, std::size_t fan_in, std::size_t fan_out, Matrix<double>& value,
                    Rng& rng) const = 0;
  /// The variances fill() draws a weight of these fans from; nullopt when its entries are not
  /// draws of mean 0 and one variance (identity) - then no mean-field theory applies.
  virtual std::optional<Variances> variances(std::size_t fan_in, std::size_t fan_out) const = 0;
  /// When all fill() does for a weight of this role and fans is rng.fill_normal(value, std):
  /// that std. The engine then draws straight into the simulated format (the same values,
  /// without the float64 copy); `gradsim gradcheck` checks that fill() agrees. Default: none.
  virtual std::optional<double> normal_std(WeightRole, std::size_t /*fan_in*/, std::size_t /*fan_out*/) const {
    return std::nullopt;
  }
};

}  // namespace gradsim

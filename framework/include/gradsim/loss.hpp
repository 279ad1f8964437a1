// The Loss interface: the scalar L at the end of the network, and dL/dy.
#pragma once

#include "abi.hpp"
#include "params.hpp"
#include "random.hpp"
#include "tensor.hpp"

namespace gradsim {

/// A loss reduces the network output y (batch x width) to a scalar L.
template <class T>
class GRADSIM_EXPORT Loss {
 public:
  virtual ~Loss() = default;
  /// Draws whatever the loss needs (targets, a probe) for outputs of this shape.
  virtual void setup(std::size_t batch, std::size_t width, Rng& rng) = 0;
  /// L = loss(y).
  virtual T forward(const Matrix<T>& y) const = 0;
  /// dy = dL/dy.
  virtual void backward(const Matrix<T>& y, Matrix<T>& dy) const = 0;
};

}  // namespace gradsim

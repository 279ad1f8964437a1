// The Layer interface: a map x (batch x fan_in) -> h (batch x fan_out) that owns parameters.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "params.hpp"
#include "tensor.hpp"

namespace gradsim {

/// What a parameter is. The spec's initialiser draws weights and biases; `fixed_init`
/// parameters (e.g. a norm's scale and shift) keep the values their layer gave them.
enum class ParamRole { weight, bias, fixed_init };

/// A layer's view of one of its parameters and of the gradient accumulated for it.
template <class T>
struct ParamRef {
  std::string name;
  ParamRole role;
  std::size_t fan_in, fan_out;  ///< for initialisers: the fans the parameter connects
  Matrix<T>* value;
  Matrix<T>* grad;  ///< same shape as value; backward() adds into it
  long block = -1;  ///< the block it belongs to; set by the engine
};

/// What a layer factory receives.
struct LayerArgs {
  std::size_t fan_in, fan_out;
  Params params;
};

/// A layer maps x (batch x fan_in) to h (batch x fan_out) and owns its parameters.
template <class T>
class Layer {
 public:
  virtual ~Layer() = default;
  /// h = layer(x). Caches what backward() needs (x, and any normalisation statistics).
  virtual void forward(const Matrix<T>& x, Matrix<T>& h) = 0;
  /// dx = (dh/dx)^T dh; adds dL/dW into the grads of params(). Called once per forward().
  virtual void backward(const Matrix<T>& dh, Matrix<T>& dx) = 0;
  /// The parameters and their gradient buffers (pointers stay valid for the layer's life).
  virtual std::vector<ParamRef<T>> params() = 0;
};

}  // namespace gradsim

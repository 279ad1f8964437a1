// The Mitigation interface: a plugin that changes how gradients flow, through hook points of
// the engine. Each hook has a do-nothing default, so a mitigation overrides only what it uses.
#pragma once

#include <cstddef>
#include <vector>

#include "layer.hpp"
#include "tensor.hpp"

namespace gradsim {

/// Called by the engine, in this order, during one forward/backward pass:
///   1. backward_boundary(i, da)  for i = depth-1 .. 0, on dL/da_i before it enters block i
///                                (e.g. clipping the gradient flowing backwards);
///   2. param_grads(grads)        once, on every parameter gradient, before an optimiser
///                                would read them (e.g. clipping by global norm).
/// Several mitigations apply in the order the spec lists them.
template <class T>
class Mitigation {
 public:
  virtual ~Mitigation() = default;
  virtual void backward_boundary(std::size_t /*block*/, Matrix<T>& /*da*/) {}
  virtual void param_grads(std::vector<ParamRef<T>>& /*grads*/) {}
};

}  // namespace gradsim

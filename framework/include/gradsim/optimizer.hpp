// The Optimizer interface: how a step turns a weight's gradient into an update.
#pragma once

#include <cstddef>
#include <cstdint>

#include "abi.hpp"
#include "tensor.hpp"

namespace gradsim {

/// What one optimiser step knows besides the weight.
struct StepInfo {
  double lr = 0;        ///< the schedule's learning rate for this step
  std::uint64_t t = 0;  ///< 1 for the first step taken (skipped steps do not count)
};

/// An optimiser updates one weight at a time, in place. Whatever it keeps per weight (momentum,
/// Adam's moments) lives in `state`: state_slots() arrays of the weight's shape, owned by the
/// engine, zero before the first step and the optimiser's to change. Weights, gradients and
/// state are in the simulated format; an update computed in float64 must be rounded to it, as
/// a real low-precision optimiser would (see gradsim::fn and to_double).
///
///   for every step not skipped, for every weight:  step(w, g, state, info)
///
/// A weight used by several nodes (shared across time steps) is updated once, with the sum
/// of its gradients. Mitigations' param_grads hooks (clipping) have run on g already.
template <class T>
class GRADSIM_EXPORT Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// How many arrays of the weight's shape the optimiser keeps per weight.
  virtual std::size_t state_slots() const { return 0; }
  virtual void step(Matrix<T>& w, const Matrix<T>& g, Matrix<T>* state, const StepInfo& info) const = 0;
};

}  // namespace gradsim

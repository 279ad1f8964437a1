// The forward/backward engine for one simulation, templated on the scalar type T (float64,
// float32, bfloat16, float16): every tensor of the pass is stored and computed in T, so
// overflow to inf and underflow to 0 happen for real. One Engine runs on one thread.
#pragma once

#include <memory>
#include <vector>

#include <gradsim/plugin.hpp>

#include "gradsim.pb.h"
#include "registry.hpp"
#include "stats.hpp"

namespace gradsim {

template <class T>
class Engine {
 public:
  /// Builds the network of a resolved spec and draws its weights, input and loss from the
  /// spec's seed (weights, input and loss use independent streams of it).
  Engine(const v1::SimSpec& spec, const Registry& registry);

  /// x -> a_0 -> ... -> a_{depth-1} -> L. Returns L.
  T forward();
  /// Zeroes the parameter gradients, then dL/da_{depth-1} -> ... -> dL/dx, running the
  /// mitigations' hooks; records per-block statistics.
  void backward();
  /// Writes loss and per-block records of the last forward() + backward() into `out`.
  void record(v1::SimTrace& out) const;

  /// Every parameter, block by block (for gradient checks).
  std::vector<ParamRef<T>> params();
  Matrix<T>& input() { return x_; }
  /// dL/dx of the last backward().
  const Matrix<T>& input_grad() const { return dx_; }

 private:
  struct Block {
    std::unique_ptr<Layer<T>> layer;
    std::unique_ptr<Activation<T>> act;
    std::vector<ParamRef<T>> params;
    Matrix<T> h, a;            // pre-activation and output, kept for backward
    Stats out, grad;           // of a (forward) and dL/dh (backward)
    double act_grad_norm = 0;  // ||dL/da||
  };
  const Matrix<T>& input_of(std::size_t i) const { return i ? blocks_[i - 1].a : x_; }

  std::vector<Block> blocks_;
  std::unique_ptr<Loss<T>> loss_;
  std::vector<std::unique_ptr<Mitigation<T>>> mitigations_;
  Matrix<T> x_, dx_;
  Matrix<T> da_, dh_;  // backward buffers, reused by every block
  T loss_value_{};
};

/// Runs one resolved simulation in its dtype and fills `out` (index and spec are the
/// caller's). An exception thrown by plugin code becomes status FAILED with its message;
/// inf and NaN in the numbers are results, not failures.
void simulate(const v1::SimSpec& spec, const Registry& registry, v1::SimTrace& out);

}  // namespace gradsim

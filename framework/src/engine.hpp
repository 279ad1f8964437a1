// The forward/backward engine for one simulation, templated on the scalar type T (float64,
// float32, bfloat16, float16): every tensor of the pass is stored and computed in T, so
// overflow to inf and underflow to 0 happen for real. One Engine runs on one thread.
//
// The network is a flat list of nodes; node j reads value j and writes value j + 1 (value 0
// is the input). A node is a layer (the spec's layer, an activation, or a layer a mitigation
// inserted) or a residual merge y = P(x_s) + alpha * value_j, whose x_s is an earlier value.
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

  /// Runs the simulation: one pass, or `train.steps` training steps, into `out`.
  void run(v1::SimTrace& out);

  /// x -> ... -> L. Returns L.
  T forward();
  /// Zeroes the parameter gradients, back-propagates dL/dy * loss scale through every node,
  /// running the mitigations' hooks, and unscales the parameter gradients. Returns whether
  /// a parameter gradient is inf or NaN (before param_grads hooks).
  bool backward();
  /// Writes the last pass's per-block records into `out`.
  void record(v1::SimTrace& out) const;

  /// Every parameter, input side first (for gradient checks and the optimiser).
  const std::vector<ParamRef<T>>& params() const { return params_; }
  Matrix<T>& input() { return values_[0]; }
  /// dL/dx of the last backward().
  const Matrix<T>& input_grad() const { return dx_; }

 private:
  struct Node {
    std::unique_ptr<Layer<T>> layer;  // null for a residual merge
    std::size_t block = 0;
    bool main = false;  // the spec's layer of the block: its output is h
    // A residual merge: value[j+1] = P(value[skip_from]) + alpha * value[j].
    std::size_t skip_from = 0;
    double alpha = 1;
    std::unique_ptr<Layer<T>> projection;  // P where widths differ, else identity
    Matrix<T> projected;
  };
  struct Block {
    std::size_t end = 0;  // index of the value the block outputs
    Stats out, grad, act_grad;  // of its output (forward), dL/dh and dL/da (backward)
  };
  void add_node(std::unique_ptr<Layer<T>> layer, std::size_t block, bool main = false);
  void add_inserts(Site site, std::size_t block, std::size_t width, std::size_t depth);
  void collect_events(std::uint32_t step, v1::SimTrace& out);

  const v1::SimSpec& spec_;
  std::vector<Node> nodes_;
  std::vector<Matrix<T>> values_;
  std::vector<Block> blocks_;
  std::unique_ptr<Loss<T>> loss_;
  std::vector<std::unique_ptr<Mitigation<T>>> mitigations_;
  std::vector<ParamRef<T>> params_;
  Matrix<T> d_, tmp_, skip_grad_, dx_;  // backward buffers, reused by every node
  T loss_value_{};
  double loss_scale_ = 1;
};

/// Constructs, in float64, every plugin object a resolved spec needs (layers for both fan-ins,
/// activation, initialiser, loss, mitigations), so that a plugin refusing its arguments (a
/// gain layer asked to change width) is a spec error before anything runs. Throws SpecError
/// naming the spec field.
void check_constructible(const v1::SimSpec& spec, const Registry& registry);

/// Runs one resolved simulation in its dtype and fills `out` (index and spec are the
/// caller's). An exception thrown by plugin code becomes status FAILED with its message;
/// inf and NaN in the numbers are results, not failures.
void simulate(const v1::SimSpec& spec, const Registry& registry, v1::SimTrace& out);

}  // namespace gradsim

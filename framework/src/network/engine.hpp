// The forward/backward engine for one simulation, templated on the scalar type T (float64,
// float32, bfloat16, float16): every tensor of the pass is stored and computed in T, so
// overflow to inf and underflow to 0 happen for real. One Engine runs on one thread.
//
// It runs a Network (network.hpp): it owns the weights (one value and one gradient per
// weight, however many nodes use it), every node's per-call context, and the values of the
// pass, which stay alive from a node's forward to its backward.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <gradsim/plugin.hpp>

#include "gradsim.pb.h"
#include "network/network.hpp"
#include "network/stats.hpp"
#include "plugin/registry.hpp"

namespace gradsim {

template <class T>
class Task;

/// When a simulation must stop (checked before every node); max() for never.
using Deadline = std::chrono::steady_clock::time_point;

template <class T>
class Engine {
 public:
  /// Runs a built network; weights, input and loss are drawn from the spec's seed (each
  /// weight from its own stream, keyed by its block and name; input and loss from theirs).
  Engine(const v1::SimSpec& spec, Network<T> net, Deadline deadline = Deadline::max());
  /// Builds the network of a resolved spec, then as above.
  Engine(const v1::SimSpec& spec, const Registry& registry, Deadline deadline = Deadline::max());
  Engine(const Engine&) = delete;  // contexts point into the store
  ~Engine();

  /// Runs the simulation: one pass, or `train.steps` training steps (with a task: on its
  /// mini-batches, with held-out evaluations and a verdict), into `out`.
  void run(v1::SimTrace& out);

  /// x -> ... -> L. Returns L.
  T forward();
  /// Zeroes the weight gradients, back-propagates dL/dy * loss scale through every node,
  /// running the mitigations' hooks, and unscales the weight gradients. Returns whether a
  /// weight gradient is inf or NaN (before param_grads hooks).
  bool backward();
  /// Writes the last pass's per-block records into `out` (with what the layers report about
  /// it: Layer::measures).
  void record(v1::SimTrace& out);

  /// The singular values of the Jacobians spec.jacobian() asks for (jacobian.cpp): dy/dx of
  /// input rows 0 .. samples-1 at the values of the last forward(), and with per_block the
  /// partial products up to each block's output. Adds into the weight gradients (backward()
  /// zeroes them first), so it runs between forward() and backward(). Throws where a layer
  /// turns out to mix the rows of the batch.
  struct Spectra {
    std::vector<v1::Spectrum> network;
    std::vector<std::vector<v1::Spectrum>> blocks;  // [block][sample], with per_block
  };
  Spectra jacobian();

  /// Every weight of the network, input side first (for gradient checks and the optimiser).
  const std::vector<WeightRef<T>>& weights() const { return refs_; }
  Matrix<T>& input() { return values_[0]; }
  /// y of the last forward(): what the loss reads.
  const Matrix<T>& output() const { return values_.back(); }
  /// dL/dx of the last backward().
  const Matrix<T>& input_grad() const { return dx_; }
  const Network<T>& network() const { return net_; }
  /// Whether a mitigation's backward_boundary hook changed the flowing gradient in a pass.
  bool flow_changed() const { return flow_changed_; }

 private:
  struct Block {
    Stats out, grad, act_grad;  // of its output (forward), dL/dh and dL/da (backward)
  };
  /// The arrays of one engine, kept per thread between simulations: a simulation of the shape
  /// of the last one on its thread allocates none. Only for the same shapes: Eigen frees an
  /// array before it allocates one of a new size, and a failed allocation would leave it
  /// pointing at the freed memory.
  struct Arrays {
    std::vector<std::size_t> shapes;  // of the network they were made for
    std::vector<Weight<T>> store;
    std::vector<Matrix<T>> values, projected;
    Matrix<T> d, tmp, skip_grad, dx;
  };
  static Arrays& spare();
  std::vector<std::size_t> shapes() const;
  using Use = typename Network<T>::Use;
  /// A context for node `call` (+ nodes for a projection), its weight list and random stream
  /// kept in `weights` and `rngs` (reserved: a context points into them).
  Ctx<T> context(const Use& use, std::size_t call, std::vector<std::vector<Weight<T>*>>& weights,
                 std::vector<Rng>& rngs);
  /// Nodes [from, to) run on one row of the pass replicated (jacobian.cpp): forward and
  /// backward passes, and forward mode, for blocks of directions.
  struct Probe;
  /// d(value[to])/d(value[from]) at row `row` of the pass, computed in T (value[from]'s row
  /// replicated, an identity cotangent), in float64.
  Matrix<double> piece_jacobian(std::size_t from, std::size_t to, Eigen::Index row);
  /// The whole network's dy/dx at `row` estimated by krylov_spectrum (a network too wide to
  /// assemble it).
  v1::Spectrum krylov(Eigen::Index row);
  void apply(const Use& use, Ctx<T>& ctx, const Matrix<T>& x, Matrix<T>& y);
  void apply_backward(const Use& use, Ctx<T>& ctx, const Matrix<T>& x, const Matrix<T>& y, const Matrix<T>& dy,
                      Matrix<T>& dx);
  void collect_events(std::uint32_t step, v1::SimTrace& out);
  /// What the training steps since the last evaluation saw.
  struct Progress {
    double loss = 0;
    std::uint64_t steps = 0, correct = 0, rows = 0, nonfinite = 0, skipped = 0;
  };
  /// The optimiser's step at learning rate `lr`; with `ratios`, each block's ||update|| /
  /// ||weights||.
  void optimizer_step(double lr, std::vector<double>* ratios);
  /// The held-out evaluation after `step` steps, into `out` (resets `since`).
  void evaluate(std::uint32_t step, double lr, const std::vector<double>& ratios, Progress& since, v1::SimTrace& out);
  v1::Verdict verdict(const v1::SimTrace& out) const;
  void check_deadline() const;

  const v1::SimSpec& spec_;
  Network<T> net_;
  Deadline deadline_;
  std::vector<Weight<T>> store_;
  std::vector<WeightRef<T>> refs_;
  std::vector<std::vector<Weight<T>*>> use_weights_;  // per context: the store entries it sees
  std::vector<Rng> call_rngs_;                        // per context
  std::vector<Ctx<T>> ctx_, proj_ctx_;                // per node: its layer's and its projection's
  std::vector<Matrix<T>> values_, projected_;
  std::vector<Block> blocks_;
  Matrix<T> d_, tmp_, skip_grad_, dx_;  // backward buffers, reused by every node
  Task<T>* task_ = nullptr;                     // net_.loss, with train.task
  std::vector<std::vector<Matrix<T>>> opt_state_;  // per weight: the optimiser's arrays
  std::uint64_t opt_steps_ = 0;                 // optimiser steps taken
  T loss_value_{};
  double loss_scale_ = 1;
  bool flow_changed_ = false;
};

/// Checks that one simulation fits this machine's memory and its record the traces format,
/// then builds, in float64, every plugin object a resolved spec needs, so that a plugin
/// refusing its arguments is a spec error before anything runs. Throws SpecError naming the
/// field.
void check_buildable(const v1::SimSpec& spec, const Registry& registry);

/// This machine's physical memory.
std::uint64_t physical_memory_bytes();

/// Trims a finished record to `detail` (NORMS: no TensorStats; SUMMARY: no block records),
/// after noting the first and last block's gradient norms in it.
void keep_detail(v1::Detail detail, v1::SimTrace& out);

/// Runs one resolved simulation in its dtype and fills `out` (index and spec are the
/// caller's). An exception thrown by plugin code, or running past `deadline`, becomes status
/// FAILED with its message; inf and NaN in the numbers are results, not failures. Running out
/// of memory throws ResourceError: it says nothing about the simulation.
void simulate(const v1::SimSpec& spec, const Registry& registry, v1::SimTrace& out,
              Deadline deadline = Deadline::max());

}  // namespace gradsim

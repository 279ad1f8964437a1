// The network of one simulation, built once from a resolved spec: the plugin objects, the node
// list, every weight's declaration and the block it belongs to. The Engine runs it; validation
// builds it (in float64) so that a plugin refusing its arguments is a spec error before
// anything runs.
//
// The network is a flat list of nodes; node j reads value j and writes value j + 1 (value 0
// is the input). A node applies a layer (the spec's layer, the activation, or a layer a
// mitigation inserted) or merges a residual branch: y = P(x_s) + alpha * value_j, x_s an
// earlier value. A layer object may be applied by several nodes; a weight is one entry of
// the network, however many nodes use it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gradsim/plugin.hpp>

#include "gradsim.pb.h"
#include "plugin/registry.hpp"

namespace gradsim {

struct TeacherNet;

template <class T>
struct Network {
  /// One application of a layer: which layer, and which of the network's weights it uses
  /// (in the order the layer declared them).
  struct Use {
    const Layer<T>* layer = nullptr;
    std::string name;  ///< the plugin that made it, for messages
    std::vector<std::size_t> weights;
    std::size_t in_cols = 0, out_cols = 0;
  };
  struct Node {
    std::optional<Use> use;  ///< a layer; empty for a residual merge
    std::size_t block = 0;
    bool main = false;  ///< the spec's layer of the block: its output is h
    // A residual merge: value[j+1] = P(value[skip_from]) + alpha * value[j], the shortcut times
    // skip_scale (DeepNorm's alpha; 1 elsewhere: transformers only, which have no Jacobian
    // spectra or theory).
    std::size_t skip_from = 0;
    double alpha = 1, skip_scale = 1;
    std::optional<Use> projection;  ///< P where widths differ, else the identity
  };
  /// A weight of the network: declared by `owner` (weight `index` of its declarations), in
  /// the block of the owner's first use.
  struct Slot {
    WeightDecl decl;
    long block = 0;
    const Layer<T>* owner = nullptr;
    std::size_t index = 0;
  };

  std::vector<std::unique_ptr<Layer<T>>> layers;  ///< owned; uses point into them
  std::vector<std::unique_ptr<Activation<T>>> activations;
  std::vector<Slot> weights;
  std::vector<Node> nodes;
  std::vector<std::size_t> block_end;  ///< the value each block outputs
  std::unique_ptr<Initializer> init;
  std::unique_ptr<Loss<T>> loss;  ///< the spec's; empty with a task (the engine makes it)
  std::vector<std::unique_ptr<Mitigation<T>>> mitigations;
  std::unique_ptr<Optimizer<T>> optimizer;  ///< with train.steps
  std::shared_ptr<TeacherNet> teacher;      ///< with a TEACHER task
  std::size_t batch = 0, input_width = 0, width = 0;
  std::size_t tokens = 1;  ///< rows per sequence (a transformer's); batch counts rows
};

/// A TEACHER task's network (built in float64 from its own spec, teacher_spec()).
struct TeacherNet {
  v1::SimSpec spec;
  Network<double> net;
};

/// About how many bytes one simulation of a resolved spec needs at its peak: the values kept
/// for backward, saved state, weights and gradients, per-node bookkeeping, and its record
/// (per block, and per training step). An estimate that errs on the high side.
std::uint64_t estimate_bytes(const v1::SimSpec& spec);
/// About how large one simulation's record is when serialised.
std::uint64_t estimate_record_bytes(const v1::SimSpec& spec);

/// Builds the network of a resolved spec. A plugin that refuses its arguments (a gain layer
/// asked to change width) or declares its weights wrongly throws SpecError naming the field.
template <class T>
Network<T> build_network(const v1::SimSpec& spec, const Registry& registry);

}  // namespace gradsim

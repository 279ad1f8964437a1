// The Mitigation interface: a plugin that changes how gradients flow, through hook points of
// the engine. Every hook has a do-nothing default, so a mitigation overrides only what it uses.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abi.hpp"
#include "layer.hpp"
#include "tensor.hpp"

namespace gradsim {

/// Where a mitigation may insert a layer (width -> width) into block i. Blocks are grouped
/// into segments (one block each, or `span` blocks under a residual shortcut):
///
///   x ─┬─ [segment_in] ─ block ... block ─ (+) ─ [segment_out] ─► next segment
///      └──────────── shortcut (if any) ──────┘
///   block:  layer ─ [pre_activation] ─ activation ─ [post_activation]
///
/// segment_in is asked for the segment's first block, segment_out for its last; so a norm at
/// segment_in is a "pre-norm" residual arrangement, one at segment_out a "post-norm" one.
enum class Site { segment_in, pre_activation, post_activation, segment_out };

/// A residual shortcut around every `span` consecutive blocks: y = P(x) + alpha * F(x), where
/// P is the identity, or projection() where the widths differ.
struct Shortcut {
  std::size_t span = 1;
  double alpha = 1;
};

/// Something a hook did, for the trace ("clipped dL/dW from 31.6 to 1").
struct HookEvent {
  std::string what;  ///< e.g. "clip_param_grads", "loss_scale_backoff"
  long block = -1;   ///< the block it concerns, -1 for the whole network
  double before = 0, after = 0;
  bool fired = false;  ///< whether the hook changed anything
};

/// A hook's view of one weight of the network and of the gradient accumulated for it.
template <class T>
struct WeightRef {
  std::string name;
  WeightRole role;
  long block;  ///< the block of the layer that declared it (its first use)
  Matrix<T>* value;
  Matrix<T>* grad;
};

/// Calls, in this order, for one simulation:
///   building:   shortcut(depth); insert(site, block, width, depth) for every site of every
///               block; projection(fan_in, fan_out) where a shortcut changes width;
///   each step:  forward; dL/dy *= loss_scale();
///               backward_boundary(i, da) on dL/da_i, for i = depth-1 .. 0, before the
///               gradient enters block i (e.g. clipping the flowing gradient);
///               weight gradients /= loss scale; param_grads(grads) (e.g. clipping);
///               step_done(overflow) -> false skips the optimiser step.
/// Several mitigations apply in the order the spec lists them. Inserted layers get their
/// weights from the engine like any other layer.
template <class T>
class GRADSIM_EXPORT Mitigation {
 public:
  virtual ~Mitigation() = default;
  virtual std::optional<Shortcut> shortcut(std::size_t /*depth*/) const { return std::nullopt; }
  virtual std::unique_ptr<Layer<T>> insert(Site, std::size_t /*block*/, std::size_t /*width*/,
                                           std::size_t /*depth*/) const {
    return nullptr;
  }
  /// The shortcut's P where it changes width (weights drawn by the spec's initialiser).
  virtual std::unique_ptr<Layer<T>> projection(std::size_t /*fan_in*/, std::size_t /*fan_out*/) const {
    return nullptr;
  }
  virtual double loss_scale() { return 1.0; }
  virtual void backward_boundary(std::size_t /*block*/, Matrix<T>& /*da*/) {}
  virtual void param_grads(std::vector<WeightRef<T>>& /*grads*/) {}
  /// `overflow`: some weight gradient is inf or NaN. Return false to skip the step.
  virtual bool step_done(bool /*overflow*/) { return true; }

  /// What the hooks did since the engine last took them (it takes them after every step).
  std::vector<HookEvent> take_events() { return std::move(events_); }

 protected:
  void record(HookEvent e) { events_.push_back(std::move(e)); }

 private:
  std::vector<HookEvent> events_;
};

}  // namespace gradsim

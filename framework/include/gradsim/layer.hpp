// The Layer interface: a map x (batch x fan_in) -> y (batch x fan_out). The engine owns the
// layer's weights (declared once, shared by every call) and each call's context, so one layer
// may be applied many times in one pass (time steps, probes) and weights may be shared.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "abi.hpp"
#include "params.hpp"
#include "random.hpp"
#include "tensor.hpp"

namespace gradsim {

/// What a weight is, for the trace: the spec's initialiser draws weights and biases, and the
/// trace groups their gradients; `other` (a norm's scale and shift) is neither.
enum class WeightRole { weight, bias, other };

/// Who gives a weight its first value.
enum class WeightInit {
  initializer,  ///< the spec's initialiser (by role and fans)
  layer,        ///< the layer itself: Layer::init_weight, with a random stream of its own
  constant,     ///< every entry = WeightDecl::constant (a norm's gamma = 1, beta = 0)
};

/// One weight a layer declares: its shape, role and how it starts.
struct WeightDecl {
  std::string name;             ///< unique within the layer ("W", "b", "gamma")
  std::size_t rows = 0, cols = 0;
  WeightRole role = WeightRole::weight;
  std::size_t fan_in = 0, fan_out = 0;  ///< for initialisers: the fans the weight connects
  WeightInit init = WeightInit::initializer;
  double constant = 0;          ///< the value of WeightInit::constant
  double scale = 1;             ///< multiplies the initialiser's draw (DeepNorm's beta)
};

/// A weight's value and the gradient accumulated for it, owned by the engine's store.
template <class T>
struct Weight {
  Matrix<T> value, grad;  ///< same shape; backward passes add into grad
};

/// What one call of a layer sees: its weights (in the order weights() declared them) and a
/// place to keep what backward() needs. The engine keeps one context per call and passes it
/// back to backward(); x and y of the call stay alive until then.
template <class T>
class Ctx {
 public:
  Ctx() = default;
  Ctx(Weight<T>* const* weights, std::size_t count, Rng* rng) : weights_(weights), count_(count), rng_(rng) {}
  std::size_t weight_count() const { return count_; }
  /// Weight i's value.
  const Matrix<T>& w(std::size_t i) const { return weights_[i]->value; }
  /// Weight i's gradient: add into it (other calls and other layers sharing it add too).
  Matrix<T>& dw(std::size_t i) { return weights_[i]->grad; }
  /// Storage that lives from this call's forward() to its backward(); slot i. A reference
  /// stays valid until a higher slot is first used in the same call (ask for the highest first).
  Matrix<T>& saved(std::size_t i) {
    if (i >= saved_.size()) saved_.resize(i + 1);
    return saved_[i];
  }
  /// A random stream for this call (e.g. dropout masks), keyed to the layer and the call.
  Rng& rng() { return *rng_; }
  /// A context over weights [first, first + count) of this one's, with the same random stream
  /// and saved storage of its own: for a layer made of parts (a stack of recurrent cells).
  Ctx slice(std::size_t first, std::size_t count) const { return Ctx(weights_ + first, count, rng_); }
  /// How many saved() slots this call has used.
  std::size_t saved_count() const { return saved_.size(); }

 private:
  Weight<T>* const* weights_ = nullptr;
  std::size_t count_ = 0;
  Rng* rng_ = nullptr;
  std::vector<Matrix<T>> saved_;
};

/// What a layer factory receives.
struct LayerArgs {
  std::size_t fan_in, fan_out;
  Params params;
  /// Rows come in sequences of this many consecutive rows (a transformer's tokens; 1
  /// otherwise). A layer that mixes tokens mixes rows only within a sequence.
  std::size_t tokens = 1;
};

/// A number a layer reports about its last forward() for the trace (attention: its entropy).
struct Measure {
  std::string name;
  double value = 0;
};

/// A layer maps x (batch x fan_in) to y (batch x fan_out). It keeps no state of its own
/// between calls (its methods are const): weights and saved values live in the Ctx.
///
///   forward:  y = layer(x; w)
///   backward: dx = (dy/dx)^T dy, and dw(i) += (dy/dw_i)^T dy for every weight i
///   tangent:  dy = (dy/dx) dx (optional)
template <class T>
class GRADSIM_EXPORT Layer {
 public:
  virtual ~Layer() = default;
  /// The weights this layer uses, declared once; the engine allocates and initialises them.
  virtual std::vector<WeightDecl> weights() const { return {}; }
  /// Draws weight i's first value, for a weight declared WeightInit::layer: `value` has the
  /// declared shape; `rng` is a stream of the engine's, keyed to the layer's block and the name.
  virtual void init_weight(std::size_t /*i*/, Matrix<double>& /*value*/, Rng& /*rng*/) const {}
  /// y = layer(x). May keep values for backward() in ctx.saved().
  virtual void forward(Ctx<T>& ctx, const Matrix<T>& x, Matrix<T>& y) const = 0;
  /// dx = (dy/dx)^T dy; adds dL/dw into ctx.dw(i). Gets the same ctx, x and y as the forward()
  /// call it belongs to; called at most once per forward().
  virtual void backward(Ctx<T>& ctx, const Matrix<T>& x, const Matrix<T>& y, const Matrix<T>& dy,
                        Matrix<T>& dx) const = 0;
  /// Forward mode: dy = (dy/dx) dx, the derivative along the directions in dx's rows, at the x
  /// of the forward() call `ctx` belongs to (weights held fixed; nothing is added to dw). May be
  /// called any number of times between that forward() and its backward(). Jacobian spectra of
  /// networks too wide to assemble use it (Krylov); returns false if the layer has none (the
  /// default).
  virtual bool tangent(Ctx<T>& /*ctx*/, const Matrix<T>& /*x*/, const Matrix<T>& /*y*/, const Matrix<T>& /*dx*/,
                       Matrix<T>& /*dy*/) const {
    return false;
  }
  /// Whether a row of y depends on other rows of x (batch norm's statistics over the batch).
  /// Such a layer has no per-example Jacobian, so a spec asking for one (`jacobian`) is refused.
  virtual bool mixes_rows() const { return false; }
  /// Numbers about the forward() call `ctx` belongs to, recorded in its block's trace
  /// (LayerTrace.measures, averaged over the block's layers that report one name). Asked after
  /// the first pass's backward(), before the context is used again.
  virtual std::vector<Measure> measures(Ctx<T>& /*ctx*/) const { return {}; }
};

}  // namespace gradsim

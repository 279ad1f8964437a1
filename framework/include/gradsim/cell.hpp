// The Cell interface: one time step of a recurrent network, s_t = cell(s_{t-1}, x_t). The
// engine unrolls it over the sequence, so every step uses the same weights (declared once,
// their gradients summed over the steps: backpropagation through time).
#pragma once

#include <cstddef>
#include <vector>

#include "abi.hpp"
#include "activation.hpp"
#include "layer.hpp"
#include "params.hpp"
#include "tensor.hpp"

namespace gradsim {

/// What a cell factory receives.
template <class T>
struct CellArgs {
  std::size_t input = 0;   ///< columns of x_t
  std::size_t hidden = 0;  ///< columns of h_t
  Params params;
  /// The spec's activation (network.activation), for a cell that applies one (rnn); a cell
  /// with fixed nonlinearities (gru, lstm) ignores it.
  const Activation<T>* activation = nullptr;
};

/// A recurrent cell maps the state s_{t-1} (batch x state_cols()) and the input x_t (batch x
/// input) to s_t. The first `hidden` columns of the state are h_t, what the layer above and
/// the loss read; a cell may carry more (an LSTM's state is [h, c]). Like a layer, it keeps no
/// state of its own between calls: weights and saved values live in the Ctx, one per step.
///
///   forward:  s = cell(s_prev, x; w)
///   backward: ds_prev = (ds/ds_prev)^T ds, dx = (ds/dx)^T ds, dw(i) += (ds/dw_i)^T ds
template <class T>
class GRADSIM_EXPORT Cell {
 public:
  virtual ~Cell() = default;
  /// Columns of the state (hidden for rnn and gru, 2 hidden for lstm).
  virtual std::size_t state_cols() const = 0;
  /// The weights, declared once and shared by every time step.
  virtual std::vector<WeightDecl> weights() const { return {}; }
  /// Draws weight i's first value, for a weight declared WeightInit::layer.
  virtual void init_weight(std::size_t /*i*/, Matrix<double>& /*value*/, Rng& /*rng*/) const {}
  /// s = cell(s_prev, x). May keep values for backward() in ctx.saved().
  virtual void forward(Ctx<T>& ctx, const Matrix<T>& s_prev, const Matrix<T>& x, Matrix<T>& s) const = 0;
  /// ds_prev and dx from ds; adds dL/dw into ctx.dw(i). Gets the same ctx, s_prev, x and s as
  /// the forward() call it belongs to; called at most once per forward().
  virtual void backward(Ctx<T>& ctx, const Matrix<T>& s_prev, const Matrix<T>& x, const Matrix<T>& s,
                        const Matrix<T>& ds, Matrix<T>& ds_prev, Matrix<T>& dx) const = 0;
};

}  // namespace gradsim

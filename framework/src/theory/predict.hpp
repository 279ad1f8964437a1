// Mean-field predictions for one simulation, block by block, next to what it measures.
//
// Theory covers a stack of dense layers with an elementwise activation (after or before each
// layer; a linear read-out allowed), residual shortcuts around branches that end in a dense
// layer (x + alpha (W phi(x) + b), any span), layer and RMS norm at any site, one batch norm
// before or after the activation of every block in a plain stack (at finite batch,
// theory/batchnorm.hpp), weights from an
// initialiser that states its variances, any input variance and input correlation, in any
// number format (it predicts the real-valued network). It does not cover (and says so in the
// trace, never predicting wrongly): tied weights, layers other than dense, activations that
// are not elementwise (softmax), initialisers without variances (identity), other layers a
// mitigation inserts (batch norm elsewhere), residual branches that end in
// their activation, projected shortcuts, and a pass whose flowing gradient a mitigation
// changed (flowing-gradient clipping). Uniform loss
// scaling is covered: the prediction is anchored at the measured last block.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gradsim.pb.h"
#include "plugin/registry.hpp"

namespace gradsim::theory {

struct Prediction {
  std::string none;  ///< why there is no prediction; empty when there is one
  double sigma_w2 = 0, sigma_b2 = 0;  ///< of the blocks after the first
  /// Per block: E[h^2], E[a^2], and (with an input correlation) h's correlation c.
  std::vector<double> q, out_sq, c;
  /// E||dL/dh||^2 of each block, relative to the network output's.
  std::vector<double> grad_sq;
  double log10_first_over_last = 0;
  double log10_spread = 0;  ///< see v1::Prediction
  bool plain = false;  ///< only dense layers and the activation: the fixed-point analysis applies
  double xi_c = NAN;   ///< the correlation depth scale at (sigma_w2, sigma_b2), for a plain stack
};

/// What theory predicts for a resolved spec. Cached per configuration (label, seed, format
/// and training do not enter), so a sweep computes it once per point, not per replica.
std::shared_ptr<const Prediction> predict(const v1::SimSpec& spec, const Registry& registry);

/// Writes a prediction into a simulation's trace: SimTrace.prediction and each block's
/// predicted_* (the gradient norms anchored at the measured last block). With `flow_changed`
/// (a mitigation changed the flowing gradient) it writes only why there is none.
void annotate(const Prediction& p, bool flow_changed, v1::SimTrace& out);

}  // namespace gradsim::theory

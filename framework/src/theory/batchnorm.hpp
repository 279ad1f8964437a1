// Batch norm's gradient growth at finite batch, in the mean-field limit (infinite width,
// gradient independence; Yang et al. 2019, "A Mean Field Theory of Batch Normalization").
//
// A block is a dense layer, batch norm over the B rows of each feature, and the activation,
// in one of two orders. In the wide limit each feature's B values are a Gaussian vector whose
// batch-mean part batch norm removes, so only the direction of the centred vector matters:
//  - before the activation (layer, norm, act): the norm's output is sqrt(B) v, v uniform on the
//    unit sphere of the (B-1)-dimensional centred subspace, whatever sigma_w2 and sigma_b2, and
//      lambda = B / ((B-1)(B-3) a) E[tr(D P D P) - v^T D P D v],
//    D = diag(phi'(sqrt(B) v)), P = I - 11^T/B, a = E[phi(y_1)^2] - E[phi(y_1) phi(y_2)]
//    (the forward kernel's eigenvalue off the all-ones direction; E[1/chi^2_{B-1}] = 1/(B-3));
//  - after the activation (layer, act, norm): h = s w + b 1 with w ~ N(0, P),
//    s^2 = sigma_w2 B/(B-1), b ~ N(0, sigma_b2), a = phi(h), u = P a / |P a|, and
//      lambda = sigma_w2 / (B-1) E[B / |P a|^2 (tr(D (P - u u^T) D) - 1^T D (P - u u^T) D 1 / B)].
// lambda is the factor E||dL/dh||^2 gains per block backwards, once the gradient's batch
// covariance has settled (one block from the loss). As B grows it tends to the infinite-batch
// value (relu: pi/(pi-1)). The expectations are Monte Carlo over B-dimensional Gaussians with a
// fixed seed: deterministic, with a standard error returned beside the value.
#pragma once

#include <cstddef>

#include "theory/meanfield.hpp"

namespace gradsim::theory {

struct Estimate {
  double value = 0, error = 0;  ///< the estimate and its Monte Carlo standard error
};

/// lambda for batch `batch` (>= 4), the norm before (true) or after the activation.
Estimate batch_norm_growth(const Phi& phi, std::size_t batch, bool before_activation, double sigma_w2 = 1,
                           double sigma_b2 = 0, std::size_t samples = std::size_t(1) << 18);

}  // namespace gradsim::theory

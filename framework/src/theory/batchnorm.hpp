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
// covariance has settled (one block from the loss); batch_norm_step gives it for any batch
// distribution of h (the first block's, whose input rows are independent, differs). As B grows it tends to the infinite-batch
// value (relu: pi/(pi-1)). The expectations are Monte Carlo over B-dimensional Gaussians with a
// fixed seed: deterministic, with a standard error returned beside the value.
#pragma once

#include <cstddef>

#include "theory/meanfield.hpp"

namespace gradsim::theory {

struct Estimate {
  double value = 0, error = 0;  ///< the estimate and its Monte Carlo standard error
};

/// One feature of h over a batch of B rows in the wide limit: N(0, centred P + mean 11^T), the
/// variance of its centred part per row and the variance of its batch mean. Independent input
/// rows of variance q give (q, q/B); a dense layer's bias adds sigma_b2 to `mean`.
struct BatchField {
  double centred = 1, mean = 0;
};

/// The factor E||dL/dh||^2 gains per block backwards across a block whose h has the batch
/// distribution `h`, the next layer's weights being of variance sigma_w2_next / fan_in: the
/// general form of the lambdas above (they are its steady state).
Estimate batch_norm_step(const Phi& phi, std::size_t batch, bool before_activation, double sigma_w2_next,
                         BatchField h, std::size_t samples = std::size_t(1) << 18);

/// lambda at the steady state of a stack with weight and bias variances sigma_w2, sigma_b2, for
/// batch `batch` (>= 4), the norm before (true) or after the activation.
Estimate batch_norm_growth(const Phi& phi, std::size_t batch, bool before_activation, double sigma_w2 = 1,
                           double sigma_b2 = 0, std::size_t samples = std::size_t(1) << 18);

/// E[phi(y_1)^2], E[phi(y_1)] and E[phi(y_1) phi(y_2)] for y = sqrt(B) v, v uniform on the
/// unit sphere of the centred subspace: what the activation after a batch norm sees.
struct SphereMoments {
  double sq = 0, mean = 0, cross = 0;
};
SphereMoments batch_norm_output_moments(const Phi& phi, std::size_t batch, std::size_t samples = std::size_t(1) << 18);

}  // namespace gradsim::theory

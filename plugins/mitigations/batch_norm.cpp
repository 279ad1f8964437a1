// batch_norm: normalise each feature over the batch, with the batch's own statistics (as in
// training mode; Ioffe & Szegedy 2015). At initialisation it makes gradients grow with depth
// (Yang et al. 2019).
#include "norm.hpp"

namespace {
template <class T>
struct BatchNorm : gradsim_plugins::NormMitigation<T, gradsim_plugins::NormKind::batch> {
  static constexpr const char* help = "batch norm (training mode): each feature normalised over the batch";
  using gradsim_plugins::NormMitigation<T, gradsim_plugins::NormKind::batch>::NormMitigation;
};
}  // namespace
GRADSIM_MITIGATION("batch_norm", BatchNorm)

// layer_norm: normalise each row over its features (Ba et al. 2016).
#include "norm.hpp"

namespace {
template <class T>
struct LayerNorm : gradsim_plugins::NormMitigation<T, gradsim_plugins::NormKind::layer> {
  static constexpr const char* help = "layer norm: each row normalised over its features";
  using gradsim_plugins::NormMitigation<T, gradsim_plugins::NormKind::layer>::NormMitigation;
};
}  // namespace
GRADSIM_MITIGATION("layer_norm", LayerNorm)

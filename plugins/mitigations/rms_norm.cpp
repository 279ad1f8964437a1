// rms_norm: divide each row by the root mean square of its features (Zhang & Sennrich 2019).
#include "norm.hpp"

namespace {
template <class T>
struct RmsNorm : gradsim_plugins::NormMitigation<T, gradsim_plugins::NormKind::rms> {
  static constexpr const char* help = "RMS norm: each row divided by the root mean square of its features";
  using gradsim_plugins::NormMitigation<T, gradsim_plugins::NormKind::rms>::NormMitigation;
};
}  // namespace
GRADSIM_MITIGATION("rms_norm", RmsNorm)

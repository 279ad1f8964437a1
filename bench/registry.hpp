// The built-in plugins, for the benchmarks that build simulations or activations.
#pragma once

#include <stdexcept>

#include "plugin/registry.hpp"

namespace gradsim::bench {

/// The plugins of the build tree (GRADSIM_PLUGIN_DIR), loaded once.
inline const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    for (const auto& f : reg.load({GRADSIM_PLUGIN_DIR})) throw std::runtime_error(f);
    return reg;
  }();
  return r;
}

}  // namespace gradsim::bench

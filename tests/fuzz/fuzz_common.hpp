// What the fuzz targets share: the built-in plugins, loaded once.
#pragma once

#include "plugin/registry.hpp"

namespace gradsim::fuzz {

inline const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    reg.load({GRADSIM_PLUGIN_DIR});
    return reg;
  }();
  return r;
}

}  // namespace gradsim::fuzz

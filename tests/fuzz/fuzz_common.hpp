// What the fuzz targets share: the built-in plugins, loaded once.
#pragma once

#include <google/protobuf/stubs/logging.h>

#include "plugin/registry.hpp"

namespace gradsim::fuzz {

/// Protobuf logs every parse error to stderr; thousands a second would slow the fuzzer down.
inline const bool quiet = [] {
  google::protobuf::SetLogHandler(nullptr);
  return true;
}();

inline const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    reg.load({GRADSIM_PLUGIN_DIR});
    return reg;
  }();
  return r;
}

}  // namespace gradsim::fuzz

// Shared helpers of the test suite: the registry of built-in plugins, loaded once.
#pragma once

#include <gtest/gtest.h>

#include "plugin/registry.hpp"

namespace gradsim::test {

/// The built-in plugins, as `gradsim` finds them in the build tree.
inline const Registry& builtins() {
  static const Registry registry = [] {
    Registry r;
    auto failures = r.load({GRADSIM_PLUGIN_DIR});
    EXPECT_TRUE(failures.empty()) << failures.front();
    return r;
  }();
  return registry;
}

/// The built-in plugins plus the good fixtures (cube, scale_grad, throwing, ...).
inline const Registry& with_fixtures() {
  static const Registry registry = [] {
    Registry r;
    auto failures = r.load({GRADSIM_PLUGIN_DIR, GRADSIM_FIXTURE_GOOD_DIR});
    EXPECT_TRUE(failures.empty()) << failures.front();
    return r;
  }();
  return registry;
}

}  // namespace gradsim::test

// One simulation of a spec written in a test: resolved against the built-in plugins, and run
// in-process.
#pragma once

#include <string>

#include "../common.hpp"
#include "network/engine.hpp"
#include "spec/spec.hpp"

namespace gradsim::test {

/// Simulation `index` of `text` (a spec in text format), resolved against `registry`.
inline v1::SimSpec resolved(const std::string& text, const Registry& registry = builtins(), std::uint64_t index = 0) {
  auto sim = sim_at(parse_spec(text, "test.textproto").sweep, index);
  resolve(sim, registry);
  return sim;
}

/// Runs a resolved simulation, which must succeed (status OK).
inline v1::SimTrace simulated(const v1::SimSpec& sim, const Registry& registry = builtins()) {
  v1::SimTrace t;
  simulate(sim, registry, t);
  EXPECT_EQ(t.status(), v1::SimTrace::OK) << t.message();
  return t;
}

}  // namespace gradsim::test

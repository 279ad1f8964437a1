// Validating a spec before anything runs: every simulation expanded and resolved, and the
// network of each distinct configuration built (in float64) with the same builder the engine
// uses, so a plugin refusing its arguments is a located spec error.
#pragma once

#include "plugin/registry.hpp"
#include "spec/spec.hpp"

namespace gradsim {

/// The first problem becomes an Error located at the line and column that caused it
/// ("sims/x.textproto:12:7: error: ...").
/// More than `max_sims` simulations is an error (kDefaultMaxSims unless --max-sims says).
Validation validate(const SpecFile& spec, const Registry& registry, std::uint64_t max_sims = kDefaultMaxSims);

}  // namespace gradsim

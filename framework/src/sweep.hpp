// Running a sweep: expand -> simulate (in parallel) -> write (in sweep order), as a oneTBB
// pipeline with a bounded number of simulations in flight, so memory stays flat.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include "gradsim.pb.h"
#include "registry.hpp"
#include "spec.hpp"

namespace gradsim {

/// The header of a run's traces file: the spec as given and the plugins it uses.
v1::TraceHeader make_header(const SpecFile& spec, const Registry& registry, const Validation& v);

struct RunCounts {
  std::uint64_t ok = 0, failed = 0;
};

/// Runs every simulation of a validated spec on `threads` threads (0: all cores) and appends
/// each trace to `writer_fn` in sweep order, whatever order they finish in. Each simulation's
/// result depends only on its spec and seed, so the output is the same for any thread count.
RunCounts run_sweep(const SpecFile& spec, const Registry& registry, std::uint64_t count,
                    int threads, const std::function<void(const v1::SimTrace&)>& writer_fn);

}  // namespace gradsim

// Running a sweep: expand -> simulate (in parallel) -> write (in sweep order), as a oneTBB
// pipeline with a bounded number of simulations in flight, so memory stays flat.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gradsim.pb.h"
#include "plugin/registry.hpp"
#include "spec/spec.hpp"

namespace gradsim {

/// The header of a run's traces file: the spec as given and the plugins it uses.
v1::TraceHeader make_header(const SpecFile& spec, const Registry& registry, const Validation& v);

class CrashGuard;

struct SweepOptions {
  int threads = 0;  ///< 0: all cores
  std::size_t in_flight = 0;  ///< simulations in flight at most (0: twice the threads)
  double sim_timeout = 0;     ///< seconds one simulation may run (0: no limit)
  /// Simulations that crashed the process in an earlier run (index -> reason): recorded as
  /// FAILED, not run again.
  std::map<std::uint64_t, std::string> crashed;
  CrashGuard* guard = nullptr;  ///< notes a simulation that hangs past its time limit
  std::uint32_t shard_index = 0, shard_count = 1;  ///< run simulations i, i + N, ... only
  std::uint64_t skip = 0;  ///< this many of the shard's simulations are done already (resume)
  const std::atomic<bool>* stop = nullptr;  ///< when set, take no new simulation
  /// Where the indices come from instead of the shard's stride (a cluster's work queue): the
  /// next index to run, nullopt when there is none; may block. The stop flag is checked first.
  std::function<std::optional<std::uint64_t>()> source;
};

struct RunCounts {
  std::uint64_t ok = 0, failed = 0;
  bool interrupted = false;  ///< stopped before the last simulation
  double busy = 0;           ///< thread-seconds spent in simulations
};

/// The most simulations of `bytes` each that fit at once in 70 % of this machine's memory,
/// at most `wanted` and at least 1.
std::size_t fitting_in_memory(std::uint64_t bytes, std::size_t wanted);

/// The indices a shard runs: i, i + N, i + 2N, ... below count.
std::uint64_t shard_size(std::uint64_t count, std::uint32_t index, std::uint32_t shards);

/// Runs the (remaining) simulations of a validated spec on `threads` threads and hands each
/// trace to `write` in sweep order, whatever order they finish in. Each simulation's result
/// depends only on its spec and seed, so the output is the same for any thread count.
/// A simulation past its time limit is recorded as FAILED at its next layer; one that is
/// stuck inside a plugin for as long again is noted in the crash journal and the process
/// exits with status 3 (finish with --resume). Running out of memory throws ResourceError,
/// naming the simulation, with every record before it written.
RunCounts run_sweep(const SpecFile& spec, const Registry& registry, std::uint64_t count,
                    const SweepOptions& options, const std::function<void(const v1::SimTrace&)>& write);

/// The record of a simulation that crashed the process in an earlier run: FAILED, with the
/// reason, not run again.
void crashed_record(const SpecFile& spec, const Registry& registry, std::uint64_t index, const std::string& reason,
                    v1::SimTrace& out);

/// For --resume: checks that `file` was written for `header` (same spec, plugins' names and
/// shard), hands each complete record to `seen`, cuts off an incomplete last record, and
/// returns how many complete records it holds; nullopt if the file ends before its header (a
/// run that died at once, or a full disk): start it again. Throws Error naming the
/// difference when the file belongs to another run, and on a damaged record.
std::optional<std::uint64_t> prepare_resume(const std::filesystem::path& file, const v1::TraceHeader& header,
                                            const std::function<void(const v1::SimTrace&)>& seen);

/// Joins shard files (any order) into one file equal to the unsharded run's: same header,
/// records in sweep order. Throws Error if a shard is missing, repeated, foreign or incomplete.
std::uint64_t merge_shards(const std::vector<std::filesystem::path>& shards, const std::filesystem::path& out);

}  // namespace gradsim

// One sweep over the processes of an MPI job (mpirun, or srun in a Slurm allocation). Rank 0
// hands out simulation indices as ranks ask for them, collects the records and writes them in
// sweep order into the one traces file; every rank, rank 0 included, runs simulations on its
// own oneTBB threads (run_sweep with an index source). The file is the same bytes as a
// one-process run of the spec: each record depends only on its spec and seed.
//
// Built with MPI when CMake finds it (Debian: libopenmpi-dev); without it, a run started by an
// MPI launcher stops with a message saying how to get MPI support.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gradsim.pb.h"
#include "run/sweep.hpp"

namespace gradsim {

/// The number of processes an MPI launcher started this one among (OMPI_COMM_WORLD_SIZE from
/// Open MPI's mpirun, PMI_SIZE from MPICH's or Slurm's PMI); 1 when none did.
int launched_processes();

/// True if this gradsim was built with MPI.
bool have_mpi();

/// A gradsim built without MPI, started by an MPI launcher: replaces this process by
/// gradsim-mpi from the same directory (the same tool built with MPI, same arguments and
/// environment) where there is one; returns where there is none (or in gradsim-mpi itself).
void hand_to_mpi_build(char** argv);

/// What one rank did, for `run --rank-stats`.
struct RankStats {
  std::uint64_t sims = 0;      ///< simulations run
  int threads = 0;             ///< its oneTBB threads
  double wall = 0;             ///< seconds from its first request to its last record
  double busy = 0;             ///< thread-seconds inside simulations
  double writer = 0;           ///< rank 0: seconds spent taking in and writing records
  std::uint64_t bytes = 0;     ///< rank 0: record bytes written
  /// The fraction of its threads' time spent waiting (for work, or for the writer's window).
  double idle() const { return wall > 0 && threads > 0 ? std::max(0.0, 1 - busy / (wall * threads)) : 0; }
};

/// The MPI job: initialised on construction (threads: funnelled, MPI calls come from the main
/// thread only), finalised on destruction. Rank 0 decides whether the job goes ahead (start):
/// the other ranks wait for its word before doing anything, so an error in the spec or the
/// command line is reported once, by rank 0.
class Cluster {
 public:
  Cluster(int& argc, char**& argv);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Collective: rank 0 says whether the run goes ahead (`go`); every rank returns its word.
  bool start(bool go);
  /// After an error on this rank: before start, tells the others not to start (and returns);
  /// after it, ends the whole job (MPI_Abort), since the other ranks would wait for it forever.
  void fail(int status);

 private:
  int rank_ = 0, size_ = 1;
  bool started_ = false;
};

/// Rank 0: runs the sweep's remaining simulations (from options.skip) over every rank, its own
/// threads included, and hands each record to `write` in sweep order, once, as the parsed
/// message and its bytes. A Ctrl-C (options.stop) takes no new simulation; the records written
/// then are a prefix of the sweep. Memory: records that arrive out of order wait in a buffer of
/// at most `window` records (the indices handed out beyond the last one written); 0 picks 4 times
/// the simulations all ranks hold at once, at least 64.
RunCounts coordinate(Cluster& cluster, const SpecFile& spec, const Registry& registry, std::uint64_t count,
                     const SweepOptions& options, std::size_t window,
                     const std::function<void(const v1::SimTrace&, const std::string&)>& write,
                     std::vector<RankStats>* stats);

/// Ranks above 0: runs the simulations rank 0 hands out on this rank's threads and sends the
/// records back, until rank 0 has no more.
void work(Cluster& cluster, const SpecFile& spec, const Registry& registry, std::uint64_t count,
          const SweepOptions& options);

}  // namespace gradsim

// Surviving a plugin that crashes or hangs. While a sweep runs, each worker thread notes the
// simulation it is running; if the process then dies of a signal (SIGSEGV, SIGBUS, SIGFPE,
// SIGILL, SIGABRT) or a simulation overruns its time limit beyond rescue, the simulation's
// index and the reason are appended to a journal next to the traces file
// (<traces>.crashes). `--resume` reads the journal and records those simulations as FAILED
// ("crashed the process: SIGSEGV") instead of running them again, so the sweep can be
// finished. A kill from outside (SIGKILL, the OOM killer) marks nothing: those simulations
// simply run again, and the file stays byte-identical to an uninterrupted run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace gradsim {

/// The journal of a traces file: `<traces>.crashes`.
std::filesystem::path crash_journal_path(const std::filesystem::path& traces);

/// Simulation index -> reason ("SIGSEGV", "time limit"), from a journal; empty if none.
std::map<std::uint64_t, std::string> read_crash_journal(const std::filesystem::path& journal);

/// While alive: signal handlers for the crash signals, which append the crashing thread's
/// simulation to `journal` and then let the signal kill the process as it would have.
class CrashGuard {
 public:
  explicit CrashGuard(const std::filesystem::path& journal);
  ~CrashGuard();
  CrashGuard(const CrashGuard&) = delete;
  CrashGuard& operator=(const CrashGuard&) = delete;
  /// Appends "index reason" to the journal (for a hang the watchdog gives up on).
  void record(std::uint64_t index, const char* reason);
};

/// The simulation this thread runs (-1: none); read by the crash handler.
void set_current_simulation(std::int64_t index);

}  // namespace gradsim

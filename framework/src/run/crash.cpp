#include "run/crash.hpp"

#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "error.hpp"

namespace gradsim {

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
thread_local std::int64_t tl_current = -1;
int g_journal = -1;
struct sigaction g_previous[sizeof kSignals / sizeof kSignals[0]];

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
  }
}

// Async-signal-safe: formats into a stack buffer and calls write(2) only.
std::size_t put(char* buf, std::size_t at, const char* text) {
  while (*text) buf[at++] = *text++;
  return at;
}
std::size_t put(char* buf, std::size_t at, std::uint64_t v) {
  char digits[24];
  int n = 0;
  do digits[n++] = char('0' + v % 10), v /= 10;
  while (v);
  while (n) buf[at++] = digits[--n];
  return at;
}

void write_entry(std::uint64_t index, const char* reason) {
  char line[96];
  std::size_t n = put(line, 0, index);
  n = put(line, n, " ");
  n = put(line, n, reason);
  n = put(line, n, "\n");
  if (g_journal >= 0) (void)!::write(g_journal, line, n);
}

extern "C" void on_crash(int sig) {
  const std::int64_t index = tl_current;
  if (index >= 0) {
    write_entry(std::uint64_t(index), signal_name(sig));
    char msg[256];
    std::size_t n = put(msg, 0, "\ngradsim: simulation ");
    n = put(msg, n, std::uint64_t(index));
    n = put(msg, n, " crashed the process (");
    n = put(msg, n, signal_name(sig));
    n = put(msg, n, "); the finished records are kept. Run again with --resume: it records this "
                    "simulation as crashed and finishes the rest\n");
    (void)!::write(STDERR_FILENO, msg, n);
  }
  std::signal(sig, SIG_DFL);  // die of the same signal, with the usual exit status and core
  std::raise(sig);
}

}  // namespace

std::filesystem::path crash_journal_path(const std::filesystem::path& traces) { return traces.string() + ".crashes"; }

std::map<std::uint64_t, std::string> read_crash_journal(const std::filesystem::path& journal) {
  std::map<std::uint64_t, std::string> out;
  std::ifstream in(journal);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ss(line);
    std::uint64_t index;
    std::string reason;
    if (ss >> index && std::getline(ss >> std::ws, reason)) out.emplace(index, reason);
  }
  return out;
}

CrashGuard::CrashGuard(const std::filesystem::path& journal) {
  g_journal = ::open(journal.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (g_journal < 0)
    throw Error(journal.string() + ": error: cannot create the crash journal (" + std::strerror(errno) + ")");
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction sa {};
    sa.sa_handler = on_crash;
    sigemptyset(&sa.sa_mask);
    sigaction(kSignals[i], &sa, &g_previous[i]);
  }
}

CrashGuard::~CrashGuard() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
  ::close(g_journal);
  g_journal = -1;
}

void CrashGuard::record(std::uint64_t index, const char* reason) { write_entry(index, reason); }

void set_current_simulation(std::int64_t index) { tl_current = index; }

}  // namespace gradsim

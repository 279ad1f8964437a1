// One sweep over an MPI job (mpirun --oversubscribe on this machine, loopback only): the file
// equals a one-process run's bytes for a sweep of mixed costs, a rank killed mid-run leaves a
// readable file that --resume completes to the same bytes, a crashing plugin on any rank is
// recorded and finished by --resume, ranks without work exit cleanly, and a spec error is
// reported once. Skipped where gradsim was built without MPI.
#include <gmock/gmock.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "../common.hpp"
#include "io/trace_io.hpp"

extern char** environ;

namespace gradsim {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

using test::Result;
using test::shell;

std::string bytes_of(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Complete records in `file`, and whether it ends in a cut record.
std::pair<std::uint64_t, bool> records_in(const std::string& file) {
  try {
    TraceReader r(file);
    v1::SimTrace t;
    while (r.next(t)) {
    }
    return {r.records_read(), r.truncated()};
  } catch (const std::exception&) {
    return {0, false};
  }
}

// The rank Open MPI gave process `pid` (-1 if it is not one of its ranks).
int rank_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  const std::string env(std::istreambuf_iterator<char>(in), {});
  const std::string key = std::string("OMPI_COMM_WORLD_RANK=");
  for (std::size_t at = 0; at < env.size(); at = env.find('\0', at) + 1) {
    if (env.compare(at, key.size(), key) == 0) return std::atoi(env.c_str() + at + key.size());
    if (env.find('\0', at) == std::string::npos) break;
  }
  return -1;
}

// The processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == parent) out.push_back(pid_t(std::stol(name)));
  }
  return out;
}

struct Mpi : ::testing::Test {
  void SetUp() override {
#if !GRADSIM_HAVE_MPI
    GTEST_SKIP() << "gradsim was built without MPI (apt install libopenmpi-dev openmpi-bin)";
#endif
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);  // CI runs as root; harmless otherwise
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    ::setenv("OMPI_MCA_btl", "self,vader", 1);  // one host: shared memory, no network
#if GRADSIM_SANITIZED
    // Open MPI leaves its own allocations to the end of the process (and from components it has
    // unloaded, which no suppression can name): no leak check in the ranks. The rest of the
    // suite checks gradsim's own code for leaks.
    if (const char* old = std::getenv("ASAN_OPTIONS")) saved_asan = old;
    ::setenv("ASAN_OPTIONS", (saved_asan + ":detect_leaks=0").c_str(), 1);
#endif
    dir = fs::temp_directory_path() / ("gradsim_mpi_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
    // Mixed costs: width 16 to 256, depth 4 to 48 (about 100x apart), two formats, 3 seeds:
    // 36 simulations.
    std::ofstream(path("mixed.textproto"))
        << "seed: 21 replicas: 3\n"
           "base { network { depth: 4 width: 16 activation { name: \"tanh\" } } batch: 32 }\n"
           "axis { path: \"network.width\" numbers: [256, 16, 64] }\n"
           "axis { path: \"network.depth\" numbers: [48, 4] }\n"
           "axis { path: \"dtype\" texts: [\"FLOAT32\", \"FLOAT16\"] }\n";
    std::ofstream(path("slow.textproto")) << "seed: 12 replicas: 100\n"
                                             "base { network { depth: 40 width: 128 activation { name: \"tanh\" } } batch: 64 }\n";
  }
  void TearDown() override {
    if (!dir.empty()) fs::remove_all(dir);
#if GRADSIM_SANITIZED
    ::setenv("ASAN_OPTIONS", saved_asan.c_str(), 1);
#endif
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  static std::string mpirun(int n) {
    return std::string(GRADSIM_MPIEXEC) + " --oversubscribe -n " + std::to_string(n) + " ";
  }
  Result gradsim(const std::string& args) const { return shell(std::string(GRADSIM_BIN) + " " + args); }
  Result gradsim_mpi(int n, const std::string& args) const {
    return shell("timeout 120 " + mpirun(n) + GRADSIM_BIN + " " + args);
  }
  // Starts `mpirun -n N gradsim run SPEC -o t.pb --threads 1` (output to `log`) and returns
  // once t.pb holds 3 records: the job is then half-way.
  pid_t start_mpirun(int n, const std::string& spec) const {
    std::vector<std::string> args{GRADSIM_MPIEXEC, "--oversubscribe", "-n", std::to_string(n), GRADSIM_BIN, "run",
                                  "-q", path(spec), "-o", path("t.pb"), "--threads", "1"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, path("log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t launcher = -1;
    EXPECT_EQ(posix_spawn(&launcher, GRADSIM_MPIEXEC, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (records_in(path("t.pb")).first < 3 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return launcher;
  }
  fs::path dir;
  std::string saved_asan;
};

TEST_F(Mpi, OneFileWithTheOneProcessRunsBytesForMixedCosts) {
  ASSERT_EQ(gradsim("run -q " + path("mixed.textproto") + " -o " + path("one.pb") + " --threads 1").code, 0);
  const std::string one = bytes_of(path("one.pb"));
  ASSERT_EQ(records_in(path("one.pb")).first, 36u);
  // Three ranks of one thread, and two of two threads (ranks with more than one thread run
  // simulations side by side, as a node of a cluster would).
  const auto three = gradsim_mpi(3, "run -q " + path("mixed.textproto") + " -o " + path("three.pb") +
                                        " --threads 1 --rank-stats");
  ASSERT_EQ(three.code, 0) << three.out;
  EXPECT_EQ(bytes_of(path("three.pb")), one);
  EXPECT_THAT(three.out, HasSubstr("wrote " + path("three.pb") + ": 36 ok, 0 failed by 3 processes"));
  // Every rank says what it ran; together, every simulation once.
  std::regex row(R"(\n +(\d) +1 +(\d+) )");
  std::uint64_t sims = 0;
  int rows = 0;
  for (std::sregex_iterator it(three.out.begin(), three.out.end(), row), end; it != end; ++it, ++rows)
    sims += std::stoull((*it)[2]);
  EXPECT_EQ(rows, 3) << three.out;
  EXPECT_EQ(sims, 36u) << three.out;
  EXPECT_THAT(three.out, HasSubstr("writer (rank 0): 36 records"));
  const auto two = gradsim_mpi(2, "run -q " + path("mixed.textproto") + " -o " + path("two.pb") + " --threads 2");
  ASSERT_EQ(two.code, 0) << two.out;
  EXPECT_EQ(bytes_of(path("two.pb")), one);
}

// The writer's window bounds what waits out of order; a window of 1 forces every rank to wait
// for the record before its own, and still gives the same bytes.
TEST_F(Mpi, SmallestWindowStillGivesTheSameBytes) {
  ASSERT_EQ(gradsim("run -q " + path("mixed.textproto") + " -o " + path("one.pb")).code, 0);
  const auto r = gradsim_mpi(3, "run -q " + path("mixed.textproto") + " -o " + path("w.pb") + " --threads 1 --window 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(bytes_of(path("w.pb")), bytes_of(path("one.pb")));
}

TEST_F(Mpi, KilledRankLeavesAReadableFileThatResumeCompletes) {
  ASSERT_EQ(gradsim("run -q " + path("slow.textproto") + " -o " + path("full.pb")).code, 0);
  // mpirun -n 3 in the background; once records are written, SIGKILL to rank 2.
  const pid_t launcher = start_mpirun(3, "slow.textproto");
  bool killed = false;
  for (pid_t p : children_of(launcher))
    if (rank_of(p) == 2) killed = ::kill(p, SIGKILL) == 0;
  int status = 0;
  waitpid(launcher, &status, 0);
  ASSERT_TRUE(killed) << bytes_of(path("log"));
  EXPECT_NE(status, 0);  // mpirun ends the job when a rank dies
  const auto [done, cut] = records_in(path("t.pb"));  // readable: complete records, maybe one cut
  EXPECT_GE(done, 3u);
  EXPECT_LT(done, 100u) << "the job was not killed half-way";
  std::printf("killed after %llu of 100 records\n", static_cast<unsigned long long>(done));
  (void)cut;
  // Resume with another number of processes: the file does not depend on it.
  const auto r = gradsim_mpi(2, "run -q " + path("slow.textproto") + " -o " + path("t.pb") + " --resume --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("resuming " + path("t.pb") + " after " + std::to_string(done)));
  EXPECT_EQ(bytes_of(path("t.pb")), bytes_of(path("full.pb")));
}

// A plugin that crashes its process, whichever rank runs it: the job ends, the simulation is in
// the crash journal, and --resume (here on one machine, without mpirun) records it as failed.
TEST_F(Mpi, CrashingPluginOnAnyRankIsRecordedAndResumeFinishes) {
  std::ofstream(path("crash.textproto"))
      << "base { network { depth: 2 width: 2 activation { name: \"segfault\" } } }\n"
         "axis { path: \"network.activation.params.above\" numbers: [1e300, 1e300, 1e300, -1e300, 1e300, 1e300] }\n";
  const std::string plugins = std::string("--plugin-dir ") + GRADSIM_FIXTURE_GOOD_DIR + " ";
  const auto r = gradsim_mpi(3, plugins + "run -q " + path("crash.textproto") + " -o " + path("c.pb") + " --threads 1");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("simulation 3 crashed the process (SIGSEGV)"));
  const auto resumed = gradsim(plugins + "run -q " + path("crash.textproto") + " -o " + path("c.pb") + " --resume");
  ASSERT_EQ(resumed.code, 2) << resumed.out;  // one failed simulation
  EXPECT_THAT(resumed.out, HasSubstr("wrote " + path("c.pb") + ": "));
  EXPECT_THAT(resumed.out, HasSubstr(" 1 failed"));
  const auto shown = gradsim("inspect " + path("c.pb"));
  EXPECT_THAT(shown.out, HasSubstr("[FAILED: crashed the process in an earlier run (SIGSEGV); recorded, not run again]"));
  EXPECT_EQ(records_in(path("c.pb")).first, 6u);
}

// Ctrl-C at mpirun: it passes SIGTERM to every rank and ends them; the file keeps what was
// written, and --resume finishes it.
TEST_F(Mpi, CtrlCToMpirunLeavesAFileThatResumeCompletes) {
  std::ofstream(path("long.textproto")) << "seed: 12 replicas: 500\n"
                                           "base { network { depth: 40 width: 128 activation { name: \"tanh\" } } batch: 64 }\n";
  ASSERT_EQ(gradsim("run -q " + path("long.textproto") + " -o " + path("full.pb")).code, 0);
  const pid_t launcher = start_mpirun(2, "long.textproto");
  ASSERT_EQ(::kill(launcher, SIGINT), 0);
  int status = 0;
  waitpid(launcher, &status, 0);
  const auto [done, cut] = records_in(path("t.pb"));
  EXPECT_GE(done, 3u);
  EXPECT_LT(done, 450u) << "the job was not stopped half-way";
  std::printf("stopped after %llu of 500 records\n", static_cast<unsigned long long>(done));
#if !GRADSIM_SANITIZED  // there the simulations in flight outlast mpirun's patience, which then kills
  EXPECT_FALSE(cut);  // the ranks stopped cleanly
  EXPECT_THAT(bytes_of(path("log")), HasSubstr("gradsim: interrupted after " + std::to_string(done) + " of 500 "
                                               "simulations; " + path("t.pb") + " holds them all. Finish with: mpirun -n 2 gradsim run"));
#else
  (void)cut;
#endif
  const auto r = gradsim_mpi(2, "run -q " + path("long.textproto") + " -o " + path("t.pb") + " --resume --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(bytes_of(path("t.pb")), bytes_of(path("full.pb")));
}

// A gradsim built without MPI, started by mpirun: one clear message, not N runs of the sweep
// into one file.
TEST_F(Mpi, BuiltWithoutMpiSaysSoOnce) {
  const auto r = shell("timeout 120 " + mpirun(3) + GRADSIM_NOMPI_BIN + " --plugin-dir " + GRADSIM_PLUGIN_DIR +
                       " run -q " + path("mixed.textproto") + " -o " + path("n.pb"));
  EXPECT_NE(r.code, 0);
  const std::string what = "gradsim: error: this gradsim was built without MPI, so 3 processes would each run the "
                           "whole sweep; install Open MPI (apt install libopenmpi-dev openmpi-bin, or "
                           "scripts/deps.sh) and build gradsim again, or run it without mpirun";
  const auto first = r.out.find(what);
  ASSERT_NE(first, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(what, first + 1), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(path("n.pb")));
}

TEST_F(Mpi, RanksWithoutWorkExitCleanly) {
  std::ofstream(path("one.textproto")) << "base { network { depth: 3 width: 8 } }\n";
  const auto r = gradsim_mpi(4, "run -q " + path("one.textproto") + " -o " + path("o.pb") + " --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("wrote " + path("o.pb") + ": 1 ok, 0 failed by 4 processes"));
  EXPECT_EQ(records_in(path("o.pb")).first, 1u);
}

TEST_F(Mpi, SpecErrorIsReportedOnceAndNothingRuns) {
  std::ofstream(path("bad.textproto")) << "base { network { depth: 3 widht: 8 } }\n";
  const auto r = gradsim_mpi(3, "run -q " + path("bad.textproto") + " -o " + path("b.pb"));
  EXPECT_NE(r.code, 0);
  const std::string what = "bad.textproto:1:32: error:";
  const auto first = r.out.find(what);
  ASSERT_NE(first, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(what, first + 1), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(path("b.pb")));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("MPI_FINALIZE")));  // each rank finalises MPI once
}

TEST_F(Mpi, ShardUnderMpirunIsRefused) {
  const auto r = gradsim_mpi(2, "run -q " + path("mixed.textproto") + " -o " + path("s.pb") + " --shard 0/2");
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--shard 0/2: under mpirun the 2 processes share the sweep as they go; leave --shard out"));
}

}  // namespace
}  // namespace gradsim

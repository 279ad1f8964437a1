// Sweeps through the gradsim binary: the same bytes for any thread count, a run killed with
// SIGKILL or stopped with Ctrl-C and resumed equals an uninterrupted one, shards merge into
// the unsharded file, and the progress line and summary a user sees.
#include <gmock/gmock.h>

#include <array>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <google/protobuf/text_format.h>

#include "../common.hpp"
#include "io/trace_io.hpp"
#include "network/network.hpp"
#include "spec/spec.hpp"

extern char** environ;

namespace gradsim {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

using test::Result;

Result sh(const std::string& args) { return test::shell(GRADSIM_BIN " " + args); }

// Starts gradsim with `args` (stdout and stderr to `log`) and returns its pid.
pid_t start(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> all{GRADSIM_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, GRADSIM_BIN, &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

std::string bytes_of(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Complete records in `file` (0 while it does not exist or has no complete header yet).
std::uint64_t records_in(const std::string& file) {
  try {
    TraceReader r(file);
    v1::SimTrace t;
    while (r.next(t)) {
    }
    return r.records_read();
  } catch (const std::exception&) {
    return 0;
  }
}

void wait_for_records(const std::string& file, std::uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (records_in(file) < n && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GE(records_in(file), n);
}

struct Sweep : ::testing::Test {
  void SetUp() override {
    dir = fs::temp_directory_path() / ("gradsim_sweep_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
    // 60 simulations: 3 activations x 4 gains x 5 replicas, with Jacobian spectra.
    std::ofstream(path("s.textproto")) << "seed: 11 replicas: 5\n"
                                          "base { network { depth: 12 width: 32 } batch: 16 "
                                          "jacobian { samples: 2 per_block: true } }\n"
                                          "axis { path: \"network.activation.name\" texts: [\"tanh\", \"relu\", \"gelu\"] }\n"
                                          "axis { path: \"init.params.gain\" range { start: 0.5 stop: 2 count: 4 log: true } }\n";
    // Slower simulations, so that a run can be caught half-way.
    std::ofstream(path("slow.textproto")) << "seed: 12 replicas: 40\n"
                                             "base { network { depth: 40 width: 128 activation { name: \"tanh\" } } batch: 64 }\n";
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }

  // Writes the uninterrupted run of slow.textproto to full.pb, then starts the same run on one
  // thread into t.pb, sends it `signal` once `records` are written, and returns its wait status.
  int interrupt(int signal, std::uint64_t records) {
    EXPECT_EQ(sh("run -q " + path("slow.textproto") + " -o " + path("full.pb")).code, 0);
    const pid_t pid = start({"run", "-q", path("slow.textproto"), "-o", path("t.pb"), "--threads", "1"}, path("log"));
    wait_for_records(path("t.pb"), records);
    EXPECT_EQ(kill(pid, signal), 0);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  }

  fs::path dir;
};

TEST_F(Sweep, SameBytesForAnyThreadCount) {
  for (int threads : {1, 2, 3, 8})
    ASSERT_EQ(sh("run -q " + path("s.textproto") + " -o " + path("t" + std::to_string(threads) + ".pb") +
                 " --threads " + std::to_string(threads)).code, 0);
  const std::string one = bytes_of(path("t1.pb"));
  EXPECT_EQ(records_in(path("t1.pb")), 60u);
  for (int threads : {2, 3, 8}) EXPECT_EQ(bytes_of(path("t" + std::to_string(threads) + ".pb")), one) << threads;
}

TEST_F(Sweep, KilledRunResumesToTheUninterruptedBytes) {
  const int status = interrupt(SIGKILL, 3);
  ASSERT_TRUE(WIFSIGNALED(status));
  const auto done = records_in(path("t.pb"));
  EXPECT_LT(done, 40u);  // really killed half-way
  const auto r = sh("run -q " + path("slow.textproto") + " -o " + path("t.pb") + " --resume");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("resuming " + path("t.pb") + " after " + std::to_string(done)));
  EXPECT_EQ(bytes_of(path("t.pb")), bytes_of(path("full.pb")));
}

TEST_F(Sweep, CtrlCStopsCleanlyAndSaysHowToResume) {
  const int status = interrupt(SIGINT, 2);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_THAT(bytes_of(path("log")), HasSubstr("gradsim: stopping after the simulations in flight (Ctrl-C again to quit now)"));
  EXPECT_THAT(bytes_of(path("log")), HasSubstr("--resume"));
  TraceReader reader(path("t.pb"));  // a valid file: every record complete
  v1::SimTrace t;
  while (reader.next(t)) {
  }
  EXPECT_FALSE(reader.truncated());
  EXPECT_LT(reader.records_read(), 40u);
  ASSERT_EQ(sh("run -q " + path("slow.textproto") + " -o " + path("t.pb") + " --resume").code, 0);
  EXPECT_EQ(bytes_of(path("t.pb")), bytes_of(path("full.pb")));
}

// A second Ctrl-C quits at once, even while a simulation is stuck in a plugin.
TEST_F(Sweep, SecondCtrlCQuitsAtOnce) {
  std::ofstream(path("h.textproto")) << "base { network { depth: 2 width: 2 activation { name: \"hang\" "
                                        "params { name: \"above\" number: -1e300 } } } }";
  const pid_t pid = start({"--plugin-dir", GRADSIM_FIXTURE_GOOD_DIR, "run", path("h.textproto"), "-o", path("t.pb")},
                          path("log"));
  // The header is written after the Ctrl-C handler is installed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((!fs::exists(path("t.pb")) || fs::file_size(path("t.pb")) == 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(pid, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT) << bytes_of(path("log"));
  EXPECT_THAT(bytes_of(path("log")), HasSubstr("Ctrl-C again to quit now"));
}

// Two runs writing one file: the second is refused while the first holds it, and the first
// (stopped with Ctrl-C afterwards) leaves a valid file. The first run's simulations sleep in
// the `slow` fixture (64 ms each), so that it still runs however fast gradsim gets.
TEST_F(Sweep, ASecondRunOnTheSameFileIsRefused) {
  const std::string fixtures = std::string("--plugin-dir ") + GRADSIM_FIXTURE_GOOD_DIR + " ";
  std::ofstream(path("long.textproto")) << "replicas: 1000 base { network { depth: 2 width: 4 activation { "
                                           "name: \"slow\" params { name: \"ms\" number: 1 } } } batch: 8 }\n";
  const pid_t pid = start({"--plugin-dir", GRADSIM_FIXTURE_GOOD_DIR, "run", "-q", path("long.textproto"), "-o",
                           path("t.pb"), "--threads", "1"},
                          path("log"));
  wait_for_records(path("t.pb"), 1);
  const auto second = sh("run -q " + path("s.textproto") + " -o " + path("t.pb"));
  EXPECT_EQ(second.code, 1);
  EXPECT_THAT(second.out, HasSubstr("another gradsim run is writing this file"));
  const auto resume = sh(fixtures + "run -q --resume " + path("long.textproto") + " -o " + path("t.pb"));
  EXPECT_EQ(resume.code, 1);
  EXPECT_THAT(resume.out, HasSubstr("another gradsim run is writing this file"));
  EXPECT_EQ(kill(pid, SIGINT), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 130) << bytes_of(path("log"));
  TraceReader reader(path("t.pb"));
  v1::SimTrace t;
  while (reader.next(t)) {
  }
  EXPECT_FALSE(reader.truncated());
  EXPECT_GE(reader.records_read(), 1u);
}

TEST_F(Sweep, ResumeRefusesAFileOfAnotherSpec) {
  ASSERT_EQ(sh("run -q -o " + path("t.pb")).code, 0);  // the default spec
  const auto r = sh("run -q " + path("s.textproto") + " -o " + path("t.pb") + " --resume");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("cannot resume: the file was written for another spec"));
}

TEST_F(Sweep, ShardsMergeIntoTheUnshardedFile) {
  ASSERT_EQ(sh("run -q " + path("s.textproto") + " -o " + path("full.pb")).code, 0);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(sh("run -q " + path("s.textproto") + " -o " + path("shard" + std::to_string(i) + ".pb") +
                 " --shard " + std::to_string(i) + "/3").code, 0);
  EXPECT_EQ(records_in(path("shard1.pb")), 20u);
  const auto r = sh("merge -o " + path("merged.pb") + " " + path("shard2.pb") + " " + path("shard0.pb") + " " +
                    path("shard1.pb"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(bytes_of(path("merged.pb")), bytes_of(path("full.pb")));
}

TEST_F(Sweep, MergeRefusesMissingOrIncompleteShards) {
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(sh("run -q " + path("s.textproto") + " -o " + path("shard" + std::to_string(i) + ".pb") +
                 " --shard " + std::to_string(i) + "/2").code, 0);
  EXPECT_THAT(sh("merge -o " + path("m.pb") + " " + path("shard0.pb")).out, HasSubstr("the sweep has 2 shards, 1 given"));
  EXPECT_THAT(sh("merge -o " + path("m.pb") + " " + path("shard0.pb") + " " + path("shard0.pb")).out,
              HasSubstr("is given twice"));
  fs::resize_file(path("shard1.pb"), fs::file_size(path("shard1.pb")) - 7);
  const auto r = sh("merge -o " + path("m.pb") + " " + path("shard0.pb") + " " + path("shard1.pb"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("shard 1 is incomplete"));
  EXPECT_FALSE(fs::exists(path("m.pb")));
  EXPECT_THAT(sh("run " + path("s.textproto") + " --shard 2/2").out, HasSubstr("expected i/N with 0 <= i < N"));
}

TEST_F(Sweep, ProgressLineOnlyWhenAskedOutsideATerminal) {
  EXPECT_THAT(sh("run -q " + path("s.textproto") + " -o " + path("t.pb")).out, Not(HasSubstr("sims/s")));
  const auto r = sh("run -q " + path("s.textproto") + " -o " + path("t.pb") + " --progress");
  EXPECT_THAT(r.out, HasSubstr("60/60 simulations"));
  EXPECT_THAT(r.out, HasSubstr("sims/s"));
  EXPECT_THAT(r.out, HasSubstr("ETA"));
  EXPECT_THAT(r.out, HasSubstr("failed 0"));
}

// Peak memory of a run must not grow with the number of simulations: 100 and 2000 replicas
// of the same small network, compared through the kernel's maximum resident set size.
TEST_F(Sweep, MemoryStaysFlatInSweepLength) {
  GRADSIM_SKIP_IF_SANITIZED("sanitizers keep freed memory in quarantine, so peak RSS grows with any allocation "
                              "count; LeakSanitizer checks for leaks in those builds instead");
  auto peak_kib = [&](int replicas) {
    std::ofstream(path("r.textproto")) << "replicas: " << replicas << " base { network { depth: 12 width: 64 } batch: 32 }";
    const pid_t pid = start({"run", path("r.textproto"), "-o", path("t.pb")}, path("log"));
    int status = 0;
    struct rusage ru {};
    wait4(pid, &status, 0, &ru);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << bytes_of(path("log"));
    return ru.ru_maxrss;
  };
  const long small = peak_kib(100), large = peak_kib(2000);
  EXPECT_EQ(records_in(path("t.pb")), 2000u);
  EXPECT_LT(large, small + 4096) << small << " KiB for 100 simulations, " << large << " KiB for 2000";
}

TEST_F(Sweep, SummaryPoolsReplicasWithAVerdict) {
  const auto r = sh("run " + path("s.textproto") + " -o " + path("t.pb"));
  ASSERT_EQ(r.code, 0) << r.out;
  // relu, gain 0.5: vanishing by 11 log10(0.5/sqrt 2) = -4.97 over 12 layers, for each of 5
  // seeds; theory's column gives that value exactly; then the Jacobian's spread.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("  5 +-[45]\\.[0-9][0-9] \\[ *-[0-9.]+, *-[0-9.]+\\]   -4\\.97 +[0-9]+\\.[0-9][0-9]  vanishing   "
                                              "network.activation.name=relu init.params.gain=0.5\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("stable +network.activation.name=relu init.params.gain=1.25992"));
  EXPECT_THAT(sh("run " + path("s.textproto") + " -o " + path("t.pb") + " --stable-band 10").out,
              Not(HasSubstr("  vanishing  ")));
}

}  // namespace
}  // namespace gradsim

namespace gradsim {
namespace {

// Out of memory is not a result: the run stops, naming the simulation, with the records
// before it written, and nothing recorded for it; --resume with the memory back finishes it,
// equal to a run that never ran short. (Before: a FAILED record, depending on the thread
// count, which --resume kept.) The memory is limited with `ulimit -v` for the first run.
TEST_F(Sweep, OutOfMemoryStopsTheRunAndResumeFinishesIt) {
  GRADSIM_SKIP_IF_SANITIZED("sanitizers reserve more address space than any ulimit -v leaves");
  std::ofstream(path("m.textproto")) << "base { network { depth: 4 width: 8 } batch: 8 }\n"
                                        "axis { path: \"network.width\" numbers: [8, 8, 4000, 8] }\n";
  ASSERT_EQ(sh("run -q " + path("m.textproto") + " -o " + path("full.pb")).code, 0);
  const std::string limited = "sh -c 'ulimit -v 1000000 && exec " GRADSIM_BIN " run -q --threads 1 " +
                              path("m.textproto") + " -o " + path("t.pb") + "' 2>&1";
  FILE* p = popen(limited.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  for (std::size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
  const int status = pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_THAT(out, HasSubstr("gradsim: error: out of memory in simulation 2 (one simulation needs about"));
  EXPECT_THAT(out, HasSubstr("the 2 finished records are in " + path("t.pb") + ". Finish with --resume and fewer --threads"));
  EXPECT_EQ(records_in(path("t.pb")), 2u);
  const auto resumed = sh("run -q --resume " + path("m.textproto") + " -o " + path("t.pb"));
  EXPECT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_EQ(bytes_of(path("t.pb")), bytes_of(path("full.pb")));
}

// The estimate of one simulation's memory errs high, so the checks built on it hold: the
// extra peak memory of a run over a trivial one stays below the estimate. Among the cases, the
// one the old estimate got 46x wrong (very deep and narrow) and a long training run.
TEST_F(Sweep, MemoryEstimateIsAnUpperBound) {
  GRADSIM_SKIP_IF_SANITIZED("sanitizers add their own memory (shadow, quarantine) to every allocation");
  auto peak_kib = [&](const std::string& spec) {
    std::ofstream(path("e.textproto")) << spec;
    const pid_t pid = start({"run", "-q", path("e.textproto"), "-o", path("e.pb")}, path("log"));
    int status = 0;
    struct rusage ru {};
    wait4(pid, &status, 0, &ru);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << bytes_of(path("log"));
    return double(ru.ru_maxrss) * 1024;
  };
  const double base = peak_kib("base { network { depth: 1 width: 2 } batch: 2 }");
  for (const std::string body : {"network { depth: 100000 width: 1 } batch: 64",
                                 "network { depth: 20 width: 512 } batch: 256 mitigations { name: \"layer_norm\" }",
                                 "network { depth: 8 width: 16 } train { steps: 20000 } mitigations { name: \"clip_layer_grad_norm\" }",
                                 // Jacobian spectra: exact (every value of every block stored), and estimated.
                                 "network { depth: 6 width: 768 } batch: 4 jacobian { samples: 2 per_block: true max_values: 1024 }",
                                 "network { depth: 6 width: 1024 } batch: 4 jacobian { samples: 1 exact_width: 512 }"}) {
    v1::SimSpec sim;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(body, &sim));
    resolve(sim, test::builtins());
    const double estimate = double(estimate_bytes(sim)), used = peak_kib("base { " + body + " }") - base;
    EXPECT_LT(used, estimate) << body;
    std::cout << body << ": " << used / 1e6 << " MB used, " << estimate / 1e6 << " MB estimated\n";
    EXPECT_GT(used, estimate / 20) << body << ": an estimate far too high refuses work that fits";
    // And the record: the largest it can be.
    TraceReader r(path("e.pb"));
    std::string raw;
    v1::SimTrace t;
    ASSERT_TRUE(r.next(t, &raw));
    EXPECT_LT(double(raw.size()), double(estimate_record_bytes(sim))) << body;
  }
}

}  // namespace
}  // namespace gradsim

// The gradsim binary end to end: run a shipped spec, decode its traces, and the error paths a
// user meets (exit codes, messages, and no output file clobbered by a bad spec).
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sys/wait.h>

#include "../common.hpp"
#include "io/trace_io.hpp"
#include "gradsim.pb.h"

namespace gradsim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using test::Result;

Result sh(const std::string& args, const std::string& env = "") { return test::shell(env + " " GRADSIM_BIN " " + args); }

struct Cli : ::testing::Test {
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("gradsim_cli_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  std::filesystem::path dir;
};

TEST_F(Cli, RunsTheDefaultSpecAndItsTracesDecode) {
  const auto r = sh("run -o " + path("t.pb"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("|dL/dh| by layer"));
  EXPECT_THAT(r.out, HasSubstr("4 ok, 0 failed"));
  TraceReader reader(path("t.pb"));
  EXPECT_EQ(reader.header().num_sims(), 4u);
  int n = 0;
  for (v1::SimTrace t; reader.next(t); ++n) {
    EXPECT_EQ(t.index(), std::uint64_t(n));
    EXPECT_EQ(t.status(), v1::SimTrace::OK);
    EXPECT_EQ(t.layers_size(), 50);
  }
  EXPECT_EQ(n, 4);
  EXPECT_FALSE(reader.truncated());
}

TEST_F(Cli, InspectJsonIsProtobufsJsonMappingOfEachRecord) {
  ASSERT_EQ(sh("run -q " GRADSIM_SIMS_DIR "/default.textproto -o " + path("t.pb")).code, 0);
  const auto r = sh("inspect --json " + path("t.pb"));
  ASSERT_EQ(r.code, 0) << r.out;
  std::istringstream lines(r.out);
  TraceReader reader(path("t.pb"));
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));  // first the header, as {"header": ...}
  v1::TraceHeader header;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line.substr(11, line.size() - 12), &header).ok()) << line;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(header, reader.header()));
  int n = 0;
  for (v1::SimTrace expected; reader.next(expected); ++n) {
    ASSERT_TRUE(std::getline(lines, line));
    v1::SimTrace parsed;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line.substr(0, 200);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, expected));
  }
  EXPECT_EQ(n, 4);
  EXPECT_FALSE(std::getline(lines, line));
}

TEST_F(Cli, InspectShowsEveryLayer) {
  ASSERT_EQ(sh("run -q -o " + path("t.pb")).code, 0);
  const auto r = sh("inspect " + path("t.pb") + " --sim 2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("sim 2  network.activation.name=relu init.params.gain=1  [ok]"));
  EXPECT_THAT(r.out, HasSubstr("\n  49 "));
}

TEST_F(Cli, BadSpecFailsWithLocationAndLeavesTheOutputAlone) {
  std::ofstream(path("bad.textproto")) << "base {\n  network { depth: 3 width: 4 activation { name: \"tahn\" } }\n}\n";
  std::ofstream(path("t.pb")) << "precious";
  const auto r = sh("run " + path("bad.textproto") + " -o " + path("t.pb"));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr(path("bad.textproto") + ":2:44: error: unknown activation \"tahn\" (did you mean \"tanh\"?)"));
  std::ifstream in(path("t.pb"));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "precious");
}

TEST_F(Cli, ValidateCountsSimulations) {
  const auto r = sh("validate " GRADSIM_SIMS_DIR "/default.textproto");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("ok, 4 simulations"));
}

TEST_F(Cli, PluginsListsParametersAndJson) {
  const auto r = sh("plugins");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("initializer gaussian"));
  EXPECT_THAT(r.out, HasSubstr("gain: real = 1  in [0, 1e+06]  weight std = gain / sqrt(fan_in)"));
  const auto j = sh("plugins --json");
  ASSERT_EQ(j.code, 0) << j.out;
  EXPECT_THAT(j.out, HasSubstr("{\"name\": \"gain\", \"type\": \"real\", \"default\": \"1\""));
}

TEST_F(Cli, ExtraPluginDirectoriesFromFlagAndEnvironment) {
  EXPECT_THAT(sh("plugins").out, Not(HasSubstr("cube")));
  EXPECT_THAT(sh("--plugin-dir " GRADSIM_FIXTURE_GOOD_DIR " plugins").out, HasSubstr("activation cube"));
  EXPECT_THAT(sh("plugins --plugin-dir " GRADSIM_FIXTURE_GOOD_DIR).out, HasSubstr("activation cube"));
  EXPECT_THAT(sh("plugins", "GRADSIM_PLUGIN_PATH=" GRADSIM_FIXTURE_GOOD_DIR).out, HasSubstr("activation cube"));
}

TEST_F(Cli, BrokenPluginIsReportedAndStopsTheRun) {
  const auto dir = std::filesystem::path(GRADSIM_FIXTURE_BAD_ABI).parent_path().string();
  const auto r = sh("--plugin-dir " + dir + " plugins");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("gradsim: error: " GRADSIM_FIXTURE_BAD_ABI ": built for plugin ABI 999"));
}

TEST_F(Cli, FailedSimulationsAreRecordedAndSetTheExitCode) {
  std::ofstream(path("s.textproto")) << "base { network { depth: 2 width: 3 activation { name: \"throwing\" } } }\n"
                                        "axis { path: \"network.activation.params.limit\" numbers: [1e9, -1e9] }\n";
  const auto r = sh("--plugin-dir " GRADSIM_FIXTURE_GOOD_DIR " run -q " + path("s.textproto") + " -o " + path("t.pb"));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("1 ok, 1 failed"));
  TraceReader reader(path("t.pb"));
  v1::SimTrace t;
  ASSERT_TRUE(reader.next(t));
  EXPECT_EQ(t.status(), v1::SimTrace::OK);
  ASSERT_TRUE(reader.next(t));
  EXPECT_EQ(t.status(), v1::SimTrace::FAILED);
  EXPECT_EQ(t.message(), "throwing: input above limit");
}

// `gradsim gradcheck` runs the test suite's harness on any plugin: a wrong backward fails
// with the quantity and its error, a good plugin passes, an unknown name is an error.
TEST_F(Cli, GradcheckChecksAnyPlugin) {
  const std::string dirs = "--plugin-dir " GRADSIM_FIXTURE_GOOD_DIR;
  const auto bad = sh(dirs + " gradcheck wrong_cube cube");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_THAT(bad.out, HasSubstr("FAIL  activation wrong_cube  (gradsim-wrong_backward.so)"));
  EXPECT_THAT(bad.out, HasSubstr("FAIL  dh: "));
  EXPECT_THAT(bad.out, HasSubstr("FAIL  tangent: "));
  EXPECT_THAT(bad.out, HasSubstr("ok    activation cube  (gradsim-cube.so)  2 checks x 3 seeds"));
  EXPECT_THAT(bad.out, HasSubstr("1 of 2 plugins pass"));
  const auto cell = sh(dirs + " gradcheck wrong_cell lstm");
  EXPECT_EQ(cell.code, 1) << cell.out;
  EXPECT_THAT(cell.out, HasSubstr("FAIL  cell wrong_cell  (gradsim-wrong_backward.so)"));
  EXPECT_THAT(cell.out, HasSubstr("FAIL  ds_prev: "));
  EXPECT_THAT(cell.out, HasSubstr("FAIL  U (20 steps): "));
  EXPECT_THAT(cell.out, HasSubstr("ok    U: "));  // one step's dU does not see the bug
  EXPECT_THAT(cell.out, HasSubstr("ok    cell lstm  (gradsim-lstm.so)  16 checks x 3 seeds"));
  const auto opt = sh(dirs + " gradcheck wrong_optimizer adam");
  EXPECT_EQ(opt.code, 1) << opt.out;
  EXPECT_THAT(opt.out, HasSubstr("FAIL  optimizer wrong_optimizer  (gradsim-wrong_backward.so)"));
  EXPECT_THAT(opt.out, HasSubstr("FAIL  first step downhill"));
  EXPECT_THAT(opt.out, HasSubstr("FAIL  L after 50 steps / L before"));
  EXPECT_THAT(opt.out, HasSubstr("FAIL  float32 steps = float64 steps"));
  EXPECT_THAT(opt.out, HasSubstr("ok    lr 0 leaves w"));
  EXPECT_THAT(opt.out, HasSubstr("ok    optimizer adam  (gradsim-adam.so)  4 checks x 3 seeds"));
  const auto good = sh(dirs + " gradcheck dense sparse layer_scale");
  EXPECT_EQ(good.code, 0) << good.out;
  EXPECT_THAT(good.out, HasSubstr("3 of 3 plugins pass"));
  const auto all = sh("gradcheck");  // every built-in plugin
  EXPECT_EQ(all.code, 0) << all.out;
  EXPECT_THAT(all.out, Not(HasSubstr("FAIL")));
  const auto unknown = sh("gradcheck tahn");
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.out, HasSubstr("gradsim: error: no plugin named \"tahn\" (did you mean"));
}

// The summary groups by the swept axis values, never by the label: a label in the base spec
// once pooled a vanishing and an exploding configuration into one "stable" row. And it can be
// recomputed from the file, with another band.
TEST_F(Cli, SummaryGroupsByAxisValuesWhateverTheLabel) {
  std::ofstream(path("l.textproto")) << "replicas: 2 base { label: \"my sweep\" network { depth: 30 width: 32 "
                                        "activation { name: \"relu\" } } }\n"
                                        "axis { path: \"init.params.gain\" numbers: [0.5, 1.4142135623730951, 4] }\n";
  const auto r = sh("run " + path("l.textproto") + " -o " + path("t.pb"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("  2 +-[0-9.]+ .*vanishing   init.params.gain=0.5\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("  2 +[-+][0-9.]+ .*stable      init.params.gain=1.41421\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("  2 +\\+[0-9.]+ .*exploding   init.params.gain=4\n"));
  const auto again = sh("summary " + path("t.pb"));
  EXPECT_EQ(again.code, 0);
  EXPECT_THAT(r.out, HasSubstr(again.out.substr(0, again.out.find("verdict:"))));  // the same table
  const auto wide = sh("summary " + path("t.pb") + " --stable-band 100 --csv");
  EXPECT_THAT(wide.out, HasSubstr("init.params.gain=0.5,2,"));
  EXPECT_THAT(wide.out, HasSubstr(",stable,0,0,0,0,"));  // then theory's value
  EXPECT_THAT(wide.out, Not(HasSubstr("vanishing")));
}

// detail NORMS and SUMMARY keep the same numbers as FULL, in a fraction of the bytes; the run
// summary, inspect and export read each.
TEST_F(Cli, DetailLevelsKeepTheSameNumbersInLessSpace) {
  std::ofstream(path("d.textproto")) << "seed: 5 replicas: 2 base { network { depth: 30 width: 32 "
                                        "activation { name: \"relu\" } } batch: 32 }\n"
                                        "axis { path: \"init.params.gain\" numbers: [0.5, 4] }\n"
                                        "axis { path: \"detail\" texts: [\"FULL\", \"NORMS\", \"SUMMARY\"] }\n";
  const auto r = sh("run " + path("d.textproto") + " -o " + path("d.pb"));
  ASSERT_EQ(r.code, 0) << r.out;
  // One summary row per detail and gain, the same numbers whatever the detail.
  for (const char* gain : {"0.5", "4"}) {
    std::vector<std::string> rows;
    for (const char* d : {"FULL", "NORMS", "SUMMARY"}) {
      const std::string tail = std::string("init.params.gain=") + gain + " detail=" + d + "\n";
      const auto end = r.out.find(tail);
      ASSERT_NE(end, std::string::npos) << r.out;
      rows.push_back(r.out.substr(r.out.rfind('\n', end) + 1, end - r.out.rfind('\n', end) - 1));
    }
    EXPECT_EQ(rows[1], rows[0]);
    EXPECT_EQ(rows[2], rows[0]);
  }
  TraceReader reader(path("d.pb"));
  std::vector<v1::SimTrace> t(12);
  std::vector<std::size_t> bytes(3, 0);
  for (auto& s : t) {
    ASSERT_TRUE(reader.next(s));
    bytes[s.index() % 6 / 2] += s.ByteSizeLong();
  }
  for (int i = 0; i < 12; ++i) {
    const auto& full = t[std::size_t(i / 6 * 6 + i % 2)];  // same gain and replica, detail FULL
    const auto& s = t[std::size_t(i)];
    EXPECT_EQ(s.loss(), full.loss()) << i;
    EXPECT_EQ(s.first_grad_norm(), full.layers(0).grad_norm()) << i;
    EXPECT_EQ(s.last_grad_norm(), full.layers(29).grad_norm()) << i;
    switch (s.spec().detail()) {
      case v1::FULL: EXPECT_TRUE(s.layers(3).has_output()); break;
      case v1::NORMS:
        ASSERT_EQ(s.layers_size(), 30);
        EXPECT_FALSE(s.layers(3).has_output() || s.layers(3).has_grad() || s.layers(3).has_weight_grad());
        EXPECT_EQ(s.layers(3).grad_norm(), full.layers(3).grad_norm());
        EXPECT_EQ(s.layers(3).predicted_q(), full.layers(3).predicted_q());
        break;
      default: EXPECT_EQ(s.layers_size(), 0) << i;
    }
  }
  EXPECT_LT(3 * bytes[1], bytes[0]);   // NORMS: under a third of FULL
  EXPECT_LT(5 * bytes[2], bytes[1]);   // SUMMARY: under a fifth of NORMS
  const auto shown = sh("inspect " + path("d.pb") + " --sim 4");
  EXPECT_THAT(shown.out, ::testing::ContainsRegex("\\|dL/dh\\| at layer 0 [0-9.e+-]+, at the last layer [0-9.e+-]+: "
                                                  "log10\\(first/last\\) [-+][0-9.]+, theory [-+][0-9.]+ \\+- [0-9.]+ "
                                                  "\\(written with detail SUMMARY: no per-layer records\\)"));
  EXPECT_THAT(sh("inspect " + path("d.pb") + " --sim 2").out, HasSubstr("(detail NORMS: no statistics)"));
  const auto csv = sh("export " + path("d.pb") + " --csv -");
  EXPECT_THAT(csv.out, ::testing::ContainsRegex("\n2,0,0.5,NORMS,ok,0,[0-9.e+-]+,[0-9.e+-]+,[0-9.e+-]+,[0-9.e+-]+,,,,,,,,"));
  // A per-block spectrum needs block records.
  std::ofstream(path("bad.textproto")) << "base { network { depth: 3 width: 8 } detail: SUMMARY "
                                          "jacobian { samples: 1 per_block: true } }\n";
  const auto bad = sh("validate " + path("bad.textproto"));
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.out, HasSubstr("jacobian.per_block keeps a spectrum in every block's record, and detail SUMMARY "
                                 "keeps no block records; use detail NORMS (or FULL), or drop per_block"));
}

TEST_F(Cli, TruncatedTracesAreInspectedUpToTheLastRecord) {
  ASSERT_EQ(sh("run -q -o " + path("t.pb")).code, 0);
  std::filesystem::resize_file(path("t.pb"), std::filesystem::file_size(path("t.pb")) - 10);
  const auto r = sh("inspect " + path("t.pb"));
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("sim 2"));
  EXPECT_THAT(r.out, Not(HasSubstr("sim 3")));
  EXPECT_THAT(r.out, HasSubstr("truncated after record 3"));
}

// `gradsim theory`: the grid, the edge of chaos, a spec's configurations, a custom activation
// from a plugin directory, JSON, and clear errors.
TEST_F(Cli, TheoryPrintsFixedPointsPhasesAndTheEdgeOfChaos) {
  const auto grid = sh("theory --activation relu --weight-var 1 --weight-var 2");
  EXPECT_EQ(grid.code, 0) << grid.out;
  EXPECT_THAT(grid.out, ::testing::ContainsRegex("relu +1 +0 +0 +0.5 .* ordered"));
  EXPECT_THAT(grid.out, ::testing::ContainsRegex("relu +2 +0 +2 +1 .* critical"));
  const auto edge = sh("theory --critical --activation tanh --bias-std 0.1 --json");
  EXPECT_EQ(edge.code, 0) << edge.out;
  // At the root chi_1 = 1 (the unit tests check the root against plain iteration of the map).
  EXPECT_THAT(edge.out, ::testing::ContainsRegex("\"chi_1\": (1|0\\.99999999999[0-9]*|1\\.00000000000[0-9]*), "));
  EXPECT_THAT(edge.out, HasSubstr("\"sigma_b2\": 0.010000000000000002"));
  EXPECT_THAT(edge.out, HasSubstr("\"xi_grad\": \"inf\", \"phase\": \"critical\"}"));
  const auto spec = sh("theory " + std::string(GRADSIM_SIMS_DIR) + "/edge_of_chaos.textproto");
  EXPECT_EQ(spec.code, 0) << spec.out;
  EXPECT_THAT(spec.out, ::testing::ContainsRegex("tanh +0.81 +0 .* ordered +-2\\.[0-9]+ +init.params.bias_std=0 init.params.gain=0.9\n"));
  EXPECT_THAT(spec.out, ::testing::ContainsRegex("tanh +4 +0.05 .* chaotic +\\+2\\.[0-9]+ "));
  // An activation from a plugin directory gets its theory like a built-in one.
  const auto cube = sh("theory --plugin-dir " GRADSIM_FIXTURE_GOOD_DIR " --activation cube --weight-var 0.1 --json");
  EXPECT_EQ(cube.code, 0) << cube.out;
  EXPECT_THAT(cube.out, HasSubstr("{\"activation\": \"cube\", \"sigma_w2\": 0.10000000000000001, \"sigma_b2\": 0, \"q_star\": 0, \"chi_1\": 0"));
  // An activation's parameters, checked like a spec's: leaky_relu's edge is 2 / (1 + slope^2).
  const auto leaky = sh("theory --critical --activation leaky_relu:slope=0.2 --json");
  EXPECT_THAT(leaky.out, HasSubstr("{\"activation\": \"leaky_relu:slope=0.2\", \"sigma_w2\": 1.92307692307"));
  EXPECT_THAT(sh("theory --activation leaky_relu:slope=2").out,
              HasSubstr("gradsim: error: --activation leaky_relu:slope=2: network.activation.params.slope = 2: out of range"));
  // Batch norm's finite-batch growth per block (relu at batch 64: 0.087 before, 0.090 after).
  const auto bn = sh("theory --activation relu --weight-var 2 --batch-norm 64 --json");
  EXPECT_THAT(bn.out, ::testing::ContainsRegex("\"batch_norm_before_activation\": 0\\.08[67][0-9]+, "
                                               "\"batch_norm_after_activation\": 0\\.0(89|90)[0-9]+\\}"));
  const auto softmax = sh("theory --activation softmax");
  EXPECT_EQ(softmax.code, 1);
  EXPECT_THAT(softmax.out, HasSubstr("gradsim: error: activation \"softmax\" is not elementwise"));
  const auto typo = sh("theory --activation tahn");
  EXPECT_EQ(typo.code, 1);
  EXPECT_THAT(typo.out, HasSubstr("did you mean \"tanh\"?"));
  EXPECT_EQ(sh("theory --bias-var 0 --bias-std 1").code, 1);  // one or the other
}

}  // namespace
}  // namespace gradsim

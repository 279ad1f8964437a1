// Specs: parse errors carry line:column, semantic errors point at the field (or the axis
// value) that caused them, and sweeps expand in a documented order.
#include <gmock/gmock.h>

#include "../common.hpp"
#include "error.hpp"
#include "run/validate.hpp"
#include "spec/spec.hpp"

namespace gradsim {
namespace {

using ::testing::HasSubstr;

std::string validate_error(const std::string& text, const Registry& r = test::builtins()) {
  try {
    validate(parse_spec(text, "s.textproto"), r);
  } catch (const Error& e) {
    return e.what();
  }
  return "(valid)";
}

const char* kBase = "base { network { depth: 3 width: 4 activation { name: \"tanh\" } } }\n";

// kBase with an init block.
std::string with_init(const std::string& init) {
  return "base { network { depth: 3 width: 4 activation { name: \"tanh\" } }\n  init { " + init + " } }\n";
}

TEST(Spec, SyntaxErrorReportsLineAndColumn) {
  try {
    parse_spec("seed: 1\nbase {\n  network { depth: x }\n}\n", "s.textproto");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("s.textproto:3:20: error:"));
  }
}

TEST(Spec, UnknownFieldReportsLineAndColumn) {
  try {
    parse_spec("base {\n  network { dept: 3 }\n}\n", "s.textproto");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("s.textproto:2:17: error:"));
    EXPECT_THAT(e.what(), HasSubstr("dept"));
  }
}

TEST(Spec, UnknownPluginIsLocatedAndGetsSuggestions) {
  EXPECT_EQ(validate_error("base {\n  network { depth: 3 width: 4\n    activation { name: \"tahn\" } } }\n"),
            "s.textproto:3:18: error: unknown activation \"tahn\" (did you mean \"tanh\"?); searched " GRADSIM_PLUGIN_DIR);
}

TEST(Spec, OutOfRangeParameterIsLocated) {
  EXPECT_THAT(validate_error(with_init("params { name: \"gain\" number: -2 }")),
              HasSubstr("s.textproto:2:10: error: init.params.gain = -2: out of range [0, 1000000]"));
}

TEST(Spec, UnknownParameterListsTheDeclaredOnes) {
  EXPECT_THAT(validate_error(with_init("params { name: \"gian\" number: 2 }")),
              HasSubstr("initializer \"gaussian\" has no parameter \"gian\" (it takes gain, bias_std)"));
}

TEST(Spec, WrongParameterTypeIsReported) {
  EXPECT_THAT(validate_error(with_init("params { name: \"gain\" text: \"big\" }")),
              HasSubstr("init.params.gain = \"big\": expected a number"));
}

TEST(Spec, BadNetworkShapeIsReported) {
  EXPECT_THAT(validate_error("base { network { width: 4 } }"), HasSubstr("network.depth must be at least 1"));
  EXPECT_THAT(validate_error("base { network { depth: 100000 width: 100000 } }"), HasSubstr("GB; reduce depth"));
}

TEST(Spec, AxisErrorPointsAtTheAxisValue) {
  const std::string spec = std::string(kBase) +
                           "axis { path: \"network.activation.name\"\n"
                           "  texts: [\"relu\", \"sigmod\"] }\n";
  EXPECT_EQ(validate_error(spec), "s.textproto:3:3: error: unknown activation \"sigmod\" (did you mean \"sigmoid\"?); searched " GRADSIM_PLUGIN_DIR);
}

TEST(Spec, AxisWithUnknownPathIsReported) {
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"network.dept\" numbers: [1] }"),
              HasSubstr("axis 'network.dept': no field 'dept' in Network (it has depth, width"));
}

TEST(Spec, AxisValueOfWrongTypeIsReported) {
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"network.depth\" texts: [\"deep\"] }"),
              HasSubstr("depth takes an integer, not the text \"deep\""));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"network.depth\" numbers: [2.5] }"),
              HasSubstr("depth takes an integer in [0, 4294967295], not the number 2.5"));
}

TEST(Spec, PluginThatRefusesItsArgumentsIsASpecError) {
  EXPECT_EQ(validate_error("base { network { depth: 3 width: 4 input_width: 5\n"
                           "  layer { name: \"gain\" } } }"),
            "s.textproto:2:11: error: \"gain\" cannot be built: gain layer keeps the width: set "
            "network.input_width equal to network.width (got 5 and 4)");
}

TEST(Spec, CubeFailsBeforeItsPluginIsLoadedAndPassesAfter) {
  const std::string spec = "base { network { depth: 2 width: 3 activation { name: \"cube\" } } }";
  EXPECT_THAT(validate_error(spec, test::builtins()), HasSubstr("unknown activation \"cube\""));
  EXPECT_EQ(validate_error(spec, test::with_fixtures()), "(valid)");
}

TEST(Spec, ExpandsAxesAsACartesianProductLastAxisFastest) {
  auto spec = parse_spec(std::string(kBase) +
                             "seed: 7 replicas: 2\n"
                             "axis { path: \"network.depth\" numbers: [1, 2, 3] }\n"
                             "axis { path: \"network.activation.name\" texts: [\"relu\", \"tanh\"] }\n",
                         "s.textproto");
  ASSERT_EQ(sim_count(spec.sweep), 12u);
  EXPECT_EQ(validate(spec, test::builtins()).count, 12u);
  std::set<std::uint64_t> seeds;
  for (std::uint64_t i = 0; i < 12; ++i) {
    const auto sim = sim_at(spec.sweep, i);
    EXPECT_EQ(sim.network().depth(), 1 + i / 4) << i;
    EXPECT_EQ(sim.network().activation().name(), (i / 2) % 2 ? "tanh" : "relu") << i;
    EXPECT_EQ(sim.seed(), sim_seed(7, i % 2));
    seeds.insert(sim.seed());
  }
  EXPECT_EQ(seeds.size(), 2u);  // replicas differ by seed, configurations share them
  EXPECT_EQ(sim_at(spec.sweep, 7).label(), "network.depth=2 network.activation.name=tanh");
}

TEST(Spec, AxisCanSetAPluginParameter) {
  auto spec = parse_spec(std::string(kBase) + "axis { path: \"init.params.gain\" numbers: [0.5, 2] }", "s");
  auto sim = sim_at(spec.sweep, 1);
  resolve(sim, test::builtins());
  ASSERT_EQ(sim.init().params_size(), 2);
  EXPECT_EQ(sim.init().params(0).name(), "gain");
  EXPECT_EQ(sim.init().params(0).number(), 2);
}

TEST(Spec, ResolveFillsEveryDefault) {
  auto spec = parse_spec("base { network { depth: 2 width: 3 } }", "s");
  auto sim = sim_at(spec.sweep, 0);
  resolve(sim, test::builtins());
  EXPECT_EQ(sim.network().input_width(), 3u);
  EXPECT_EQ(sim.network().layer().name(), "dense");
  EXPECT_EQ(sim.network().layer().params(0).flag(), true);
  EXPECT_EQ(sim.network().activation().name(), "linear");
  EXPECT_EQ(sim.init().name(), "gaussian");
  EXPECT_EQ(sim.init().params(0).number(), 1.0);
  EXPECT_EQ(sim.loss().name(), "linear_probe");
  EXPECT_EQ(sim.batch(), 64u);
  EXPECT_EQ(sim.dtype(), v1::FLOAT64);
}

TEST(Spec, JsonIsAcceptedAndItsErrorsNameTheFile) {
  auto spec = parse_spec(R"({"seed": 3, "base": {"network": {"depth": 2, "width": 3}}})", "s.json");
  EXPECT_EQ(spec.sweep.seed(), 3u);
  EXPECT_EQ(validate(spec, test::builtins()).count, 1u);
  try {
    parse_spec(R"({"base": {"network": {"dept": 2}}})", "s.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("s.json: error:"));
    EXPECT_THAT(e.what(), HasSubstr("dept"));
  }
}

TEST(Spec, ShippedSpecsAreValid) {
  for (const auto& f : std::filesystem::directory_iterator(GRADSIM_SIMS_DIR))
    if (f.path().extension() == ".textproto")
      EXPECT_NO_THROW(validate(read_spec(f.path()), test::builtins())) << f.path();
}

}  // namespace
}  // namespace gradsim

namespace gradsim {
namespace {

std::vector<std::string> labels(const std::string& text) {
  auto spec = parse_spec(std::string(kBase) + text, "s.textproto");
  std::vector<std::string> out;
  for (std::uint64_t i = 0; i < sim_count(spec.sweep); ++i) out.push_back(sim_at(spec.sweep, i).label());
  return out;
}

TEST(Axes, LinearLogAndIntegerRanges) {
  EXPECT_THAT(labels("axis { path: \"init.params.gain\" range { start: 0.5 stop: 2 count: 4 } }"),
              ::testing::ElementsAre("init.params.gain=0.5", "init.params.gain=1", "init.params.gain=1.5",
                                     "init.params.gain=2"));
  EXPECT_THAT(labels("axis { path: \"network.depth\" range { start: 4 stop: 64 count: 5 log: true integer: true } }"),
              ::testing::ElementsAre("network.depth=4", "network.depth=8", "network.depth=16", "network.depth=32",
                                     "network.depth=64"));
  EXPECT_THAT(labels("axis { path: \"init.params.gain\" range { start: 3 stop: 3 count: 1 } }"),
              ::testing::ElementsAre("init.params.gain=3"));
}

TEST(Axes, ZippedAxesMoveTogetherInsideTheProduct) {
  // activation and gain zipped (2 points), crossed with depth (2 points): 4 simulations,
  // the zip group taking the place of its first axis (so it varies slower than depth).
  EXPECT_THAT(labels("axis { path: \"network.activation.name\" texts: [\"tanh\", \"relu\"] zip: \"act\" }\n"
                     "axis { path: \"network.depth\" numbers: [3, 6] }\n"
                     "axis { path: \"init.params.gain\" numbers: [1, 1.5] zip: \"act\" }"),
              ::testing::ElementsAre("network.activation.name=tanh network.depth=3 init.params.gain=1",
                                     "network.activation.name=tanh network.depth=6 init.params.gain=1",
                                     "network.activation.name=relu network.depth=3 init.params.gain=1.5",
                                     "network.activation.name=relu network.depth=6 init.params.gain=1.5"));
}

TEST(Axes, BadAxesAreLocatedErrors) {
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"network.depth\" numbers: [1, 2] zip: \"z\" }\n"
                                                  "axis { path: \"init.params.gain\" numbers: [1, 2, 3] zip: \"z\" }"),
              HasSubstr("s.textproto:3:1: error: axis 'init.params.gain' has 3 values but the axes zipped as 'z' have 2"));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"network.depth\" numbers: [1] texts: [\"a\"] }"),
              HasSubstr("needs exactly one of numbers: [...], texts: [...] or range {...}"));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"network.depth\" }"),
              HasSubstr("needs exactly one of"));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"init.params.gain\" range { start: 0 stop: 1 count: 3 log: true } }"),
              HasSubstr("a log range needs start and stop > 0"));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"init.params.gain\" range { start: 0 stop: 1 } }"),
              HasSubstr("range.count must be at least 1"));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"mitigations[0].name\" texts: [\"\", \"layer_norm\"] }"),
              HasSubstr("'mitigations' has 0 entries in the base spec; add entry 0 there"));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"seed\" numbers: [1, 2] }"),
              HasSubstr("seed is derived by gradsim"));
  EXPECT_THAT(validate_error(std::string(kBase) + "axis { path: \"mitigations.name\" texts: [\"layer_norm\"] }"),
              HasSubstr("'mitigations' is a list; name one entry, e.g. 'mitigations[0]'"));
}

TEST(Axes, MitigationCanBeSwitchedOffByAnEmptyName) {
  auto spec = parse_spec("base { network { depth: 2 width: 3 } mitigations { name: \"layer_norm\" } }\n"
                         "axis { path: \"mitigations[0].name\" texts: [\"\", \"layer_norm\", \"batch_norm\"] }", "s");
  EXPECT_EQ(validate(spec, test::builtins()).count, 3u);
  auto off = sim_at(spec.sweep, 0), on = sim_at(spec.sweep, 2);
  resolve(off, test::builtins());
  resolve(on, test::builtins());
  EXPECT_EQ(off.mitigations_size(), 0);
  ASSERT_EQ(on.mitigations_size(), 1);
  EXPECT_EQ(on.mitigations(0).name(), "batch_norm");
}

}  // namespace
}  // namespace gradsim

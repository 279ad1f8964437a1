// The loader and registry: good plugins load; each kind of broken library is refused with a
// message that names the file, what is wrong and how to fix it.
#include <gmock/gmock.h>

#include <gradsim/abi.hpp>

#include "../common.hpp"
#include "error.hpp"
#include "loader.hpp"

namespace gradsim {
namespace {

using ::testing::HasSubstr;

std::string load_error(const std::string& file) {
  try {
    load_library(file);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

TEST(Loader, LoadsAGoodPlugin) {
  auto lib = load_library(std::string(GRADSIM_FIXTURE_GOOD_DIR) + "/gradsim-cube.so");
  ASSERT_EQ(lib->plugins.size(), 1u);
  EXPECT_EQ(lib->plugins[0].name, "cube");
  EXPECT_EQ(lib->plugins[0].kind, Kind::activation);
  EXPECT_EQ(lib->sdk_version, GRADSIM_VERSION_STRING);
}

TEST(Loader, RefusesWrongAbiVersion) {
  const std::string msg = load_error(GRADSIM_FIXTURE_BAD_ABI);
  EXPECT_THAT(msg, HasSubstr(GRADSIM_FIXTURE_BAD_ABI));
  EXPECT_THAT(msg, HasSubstr("built for plugin ABI 999 (gradsim 9.9.9)"));
  EXPECT_THAT(msg, HasSubstr("expects ABI " + std::to_string(GRADSIM_ABI_VERSION)));
  EXPECT_THAT(msg, HasSubstr("rebuild it with gradsim_add_plugin()"));
}

TEST(Loader, RefusesLibraryWithoutEntrySymbol) {
  const std::string msg = load_error(GRADSIM_FIXTURE_NO_ENTRY);
  EXPECT_THAT(msg, HasSubstr(GRADSIM_FIXTURE_NO_ENTRY));
  EXPECT_THAT(msg, HasSubstr("not a gradsim plugin (no 'gradsim_plugin_abi' symbol)"));
}

TEST(Loader, RefusesFileThatIsNotALibrary) {
  const std::string msg = load_error(GRADSIM_FIXTURE_NOT_A_LIBRARY);
  EXPECT_THAT(msg, HasSubstr(GRADSIM_FIXTURE_NOT_A_LIBRARY));
  EXPECT_THAT(msg, HasSubstr("cannot load"));
  EXPECT_THAT(msg, HasSubstr("invalid ELF header"));
}

TEST(Loader, RefusesPluginBuiltWithOtherEigenAlignment) {
  const std::string msg = load_error(GRADSIM_FIXTURE_WRONG_FLAGS);
  EXPECT_THAT(msg, HasSubstr("eigen-align=1024', this gradsim uses '"));
  EXPECT_THAT(msg, HasSubstr("the same compiler flags as gradsim"));
}

TEST(Loader, RefusesPluginWithUndefinedSymbolAtLoadTime) {
  const std::string msg = load_error(GRADSIM_FIXTURE_UNDEFINED_SYMBOL);
  EXPECT_THAT(msg, HasSubstr("cannot load: undefined symbol: gradsim_fixture_not_defined_anywhere"));
}

TEST(Loader, RefusesMissingFile) {
  EXPECT_THAT(load_error("/nonexistent/gradsim-x.so"), HasSubstr("no such file"));
}

TEST(Loader, ScanConsidersOnlyGradsimLibraries) {
  EXPECT_TRUE(is_plugin_file_name("/a/gradsim-relu.so"));
  EXPECT_FALSE(is_plugin_file_name("/a/libfoo.so"));
  EXPECT_FALSE(is_plugin_file_name("/a/gradsim-relu.txt"));
}

TEST(Registry, ScanCollectsEveryFailureAndKeepsTheGoodOnes) {
  Registry r;
  const std::string broken = std::string(GRADSIM_FIXTURE_BAD_ABI);
  auto failures = r.load({GRADSIM_PLUGIN_DIR, broken, GRADSIM_FIXTURE_NOT_A_LIBRARY, GRADSIM_FIXTURE_NO_ENTRY});
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_THAT(failures[0], HasSubstr("ABI 999"));
  EXPECT_THAT(failures[1], HasSubstr("invalid ELF header"));
  EXPECT_THAT(failures[2], HasSubstr("no 'gradsim_plugin_abi'"));
  EXPECT_NE(r.find(Kind::activation, "relu"), nullptr);
}

TEST(Registry, FindsEveryBuiltinPlugin) {
  const auto& r = test::builtins();
  for (auto [kind, name] : std::vector<std::pair<Kind, std::string>>{
           {Kind::layer, "dense"}, {Kind::activation, "linear"}, {Kind::activation, "relu"},
           {Kind::activation, "tanh"}, {Kind::activation, "sigmoid"},
           {Kind::initializer, "gaussian"}, {Kind::loss, "mse"}, {Kind::loss, "linear_probe"}}) {
    const auto* e = r.find(kind, name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_EQ(e->library->file.filename().string(), "gradsim-" + name + ".so");
  }
}

TEST(Registry, UnknownNameSuggestsTheClosest) {
  try {
    test::builtins().get(Kind::activation, "tahn");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown activation \"tahn\" (did you mean \"tanh\"?)");
  }
}

TEST(Registry, RefusesTheSameNameTwice) {
  Registry r;
  r.add(load_library(std::string(GRADSIM_FIXTURE_GOOD_DIR) + "/gradsim-cube.so"));
  auto copy = load_library(std::string(GRADSIM_FIXTURE_GOOD_DIR) + "/gradsim-cube.so");
  try {
    r.add(std::move(copy));
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("activation \"cube\" is already provided by"));
  }
}

TEST(Registry, LoadingTheSameDirectoryTwiceIsHarmless) {
  Registry r;
  EXPECT_TRUE(r.load({GRADSIM_PLUGIN_DIR, GRADSIM_PLUGIN_DIR}).empty());
}

}  // namespace
}  // namespace gradsim

// The loader and registry: good plugins load; each kind of broken library is refused with a
// message that names the file, what is wrong and how to fix it.
#include <gmock/gmock.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <iterator>

#include <gradsim/abi.hpp>
#include <gradsim/params.hpp>

#include "../common.hpp"
#include "error.hpp"
#include "plugin/loader.hpp"
#include "plugin/registry.hpp"

namespace gradsim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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
  EXPECT_THAT(msg, HasSubstr("built for plugin ABI 999, this gradsim " GRADSIM_VERSION_STRING " expects ABI " +
                             std::to_string(GRADSIM_ABI_VERSION)));
  EXPECT_THAT(msg, HasSubstr("rebuild it with gradsim_add_plugin()"));
}

TEST(Loader, RefusesAPluginOfTheFirstAbi) {
  EXPECT_THAT(load_error(GRADSIM_FIXTURE_ABI_V1), HasSubstr("built for plugin ABI 1, this gradsim"));
}

TEST(Loader, RefusesAnotherMinorSdkVersion) {
  const std::string msg = load_error(GRADSIM_FIXTURE_OLD_SDK);
  const std::string v = GRADSIM_VERSION_STRING;
  EXPECT_THAT(msg, HasSubstr("built against the gradsim 0.1.9 SDK; this gradsim " + v +
                             " loads plugins built against " + v.substr(0, v.rfind('.')) + ".x"));
}

TEST(Loader, RefusesAnotherLayoutNamingTheType) {
  const std::string msg = load_error(GRADSIM_FIXTURE_OTHER_LAYOUT);
  EXPECT_THAT(msg, HasSubstr("sizeof(Params) is " + std::to_string(sizeof(Params) + 8) + " in the plugin, " +
                             std::to_string(sizeof(Params)) + " in this gradsim"));
}

TEST(Loader, RefusesAnotherStandardLibraryMode) {
  const std::string msg = load_error(GRADSIM_FIXTURE_DEBUG_RUNTIME);
  EXPECT_THAT(msg, HasSubstr("built for C++ runtime 'libstdc++ cxx11-abi=1 debug', this gradsim uses "
                             "'libstdc++ cxx11-abi=1'"));
}

// Eigen picks its own allocator unless told; an ASan build picks the other one. A plugin built
// without gradsim::sdk (which pins it) is refused instead of corrupting the heap.
TEST(Loader, RefusesPluginWithAnotherEigenAllocator) {
  const std::string msg = load_error(GRADSIM_FIXTURE_OTHER_ALLOCATOR);
  EXPECT_THAT(msg, HasSubstr("malloc-already-aligned=1', this gradsim uses '"));
  EXPECT_THAT(msg, HasSubstr("malloc-already-aligned=0'"));
  EXPECT_THAT(msg, HasSubstr("link gradsim::sdk"));
}

// The stamp is read from the file: a refused library never ran a line of its code. (dlopen
// would have run the static constructors that register its plugins.)
TEST(Loader, RefusedLibraryIsNeverLoaded) {
  load_error(GRADSIM_FIXTURE_WRONG_FLAGS);
  std::ifstream maps("/proc/self/maps");
  const std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, Not(HasSubstr("gradsim-wrong_flags.so")));
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
  EXPECT_THAT(msg, HasSubstr("built with 'eigen 3.4 align=32 malloc-already-aligned=0', this gradsim uses "
                             "'eigen 3.4 align=16 malloc-already-aligned=0'"));
  EXPECT_THAT(msg, HasSubstr("the same compiler flags"));
}

TEST(Loader, RefusesPluginWithUndefinedSymbolAtLoadTime) {
  const std::string msg = load_error(GRADSIM_FIXTURE_UNDEFINED_SYMBOL);
  EXPECT_THAT(msg, HasSubstr("cannot load: undefined symbol: gradsim_fixture_not_defined_anywhere"));
}

TEST(Loader, RefusesALibraryThatRegistersOtherPluginsThanItsFileNames) {
  EXPECT_THAT(load_error(GRADSIM_FIXTURE_NAMES_LIE),
              HasSubstr("gradsim-names_lie.so: registers other plugins than its 'gradsim_names' section names; "
                        "rebuild it with gradsim_add_plugin()"));
  EXPECT_THAT(load_error(GRADSIM_FIXTURE_NAMES_CORRUPT),
              HasSubstr("gradsim-names_corrupt.so: corrupt 'gradsim_names' section"));
}

TEST(Loader, ReadsThePluginNamesFromTheFile) {
  const auto f = inspect_library(std::string(GRADSIM_PLUGIN_DIR) + "/gradsim-clipping.so");
  ASSERT_TRUE(f.names);
  auto names = *f.names;
  std::sort(names.begin(), names.end());
  const std::vector<std::pair<Kind, std::string>> expected = {
      {Kind::mitigation, "clip_grad_norm"}, {Kind::mitigation, "clip_grad_value"}, {Kind::mitigation, "clip_layer_grad_norm"}};
  EXPECT_EQ(names, expected);
}

TEST(Registry, LoadsALibraryWithoutNamesWhenItIsFound) {
  EXPECT_FALSE(inspect_library(GRADSIM_FIXTURE_UNNAMED).names);
  Registry r;
  ASSERT_TRUE(r.load({GRADSIM_FIXTURE_UNNAMED}).empty());
  EXPECT_EQ(r.loaded_libraries(), 1u);
  ASSERT_NE(r.find(Kind::activation, "quartic"), nullptr);
  EXPECT_EQ(r.find(Kind::activation, "quartic")->info->name, "quartic");
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

// Every library plugins/CMakeLists.txt builds is found, and each plugin a name promises is
// in the library of that name.
TEST(Registry, FindsEveryBuiltinPlugin) {
  std::set<std::string> expected, found;
  std::stringstream list(GRADSIM_BUILTIN_LIBRARIES);
  for (std::string lib; std::getline(list, lib, ',');)
    if (!lib.empty()) expected.insert(lib);
  for (const auto& e : test::builtins().entries()) found.insert(e.library->file.filename().string());
  EXPECT_EQ(found, expected);
  ASSERT_FALSE(expected.empty());
  for (const auto& lib : expected) {
    const std::string name = lib.substr(8, lib.size() - 11);  // gradsim-<name>.so
    const bool single = name != "clipping";  // the one library with three plugins
    if (!single) continue;
    bool has = false;
    for (const auto& e : test::builtins().entries()) has = has || e.info->name == name;
    EXPECT_TRUE(has) << lib << " registers no plugin named " << name;
  }
}

TEST(Registry, UnknownNameSuggestsTheClosest) {
  try {
    test::builtins().get(Kind::activation, "tahn");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown activation \"tahn\" (did you mean \"tanh\"?); searched " GRADSIM_PLUGIN_DIR);
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

// A library runs only when one of its plugins is used; its names are known before.
TEST(Registry, LoadsALibraryWhenOneOfItsPluginsIsFirstUsed) {
  Registry r;
  ASSERT_TRUE(r.load({GRADSIM_PLUGIN_DIR}).empty());
  EXPECT_EQ(r.loaded_libraries(), 0u);
  EXPECT_THAT(r.suggest(Kind::activation, "tahn"), ::testing::ElementsAre("tanh"));
  const auto* tanh = r.find(Kind::activation, "tanh");
  ASSERT_NE(tanh, nullptr);
  EXPECT_EQ(tanh->info->name, "tanh");
  EXPECT_THAT(tanh->library->file.string(), HasSubstr("gradsim-tanh.so"));
  EXPECT_EQ(r.loaded_libraries(), 1u);
  EXPECT_EQ(r.find(Kind::activation, "tanh"), tanh);
  EXPECT_EQ(r.find(Kind::activation, "no_such"), nullptr);
  EXPECT_EQ(r.loaded_libraries(), 1u);
  EXPECT_GT(r.entries().size(), 30u);  // every library
  std::size_t libraries = 0;
  for (const auto& f : std::filesystem::directory_iterator(GRADSIM_PLUGIN_DIR)) libraries += is_plugin_file_name(f.path());
  EXPECT_EQ(r.loaded_libraries(), libraries);
}

// A library that cannot load is found (its names are in the file) and refused when used, each
// time, with the loader's message; the others work.
TEST(Registry, ALibraryThatCannotLoadFailsWhereItIsUsed) {
  Registry r;
  ASSERT_TRUE(r.load({GRADSIM_PLUGIN_DIR, GRADSIM_FIXTURE_UNDEFINED_SYMBOL, GRADSIM_FIXTURE_NAMES_LIE}).empty());
  for (int i = 0; i < 2; ++i)
    EXPECT_THROW(
        try { r.find(Kind::activation, "broken"); } catch (const Error& e) {
          EXPECT_THAT(e.what(), HasSubstr("cannot load: undefined symbol: gradsim_fixture_not_defined_anywhere"));
          throw;
        },
        Error);
  EXPECT_THROW(r.get(Kind::activation, "ghost"), Error);
  EXPECT_THROW(r.entries(), Error);
  EXPECT_NE(r.find(Kind::activation, "relu"), nullptr);
}

TEST(Registry, LoadingTheSameDirectoryTwiceIsHarmless) {
  Registry r;
  EXPECT_TRUE(r.load({GRADSIM_PLUGIN_DIR, GRADSIM_PLUGIN_DIR}).empty());
}

}  // namespace
}  // namespace gradsim

// Loading plugin libraries: check each one's ABI stamp, then pull its list of plugins.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gradsim/plugin.hpp>

namespace gradsim {

/// A plugin library and what came out of it. The library handle is declared first so that it
/// is destroyed last: the PluginInfo factories are code that lives inside it.
struct LoadedLibrary {
  std::shared_ptr<void> lib;  ///< the Boost.DLL handle, kept opaque so only loader.cpp sees Boost
  std::filesystem::path file;
  std::string sdk_version;    ///< copied: the stamp's char* points into the library
  std::vector<PluginInfo> plugins;
};

/// What a plugin library's file says before anything of it runs.
struct LibraryFile {
  std::string sdk_version;
  /// The plugins its `gradsim_names` section lists (written by the registration macros);
  /// nullopt for a library without one, which must be loaded to be known.
  std::optional<std::vector<std::pair<Kind, std::string>>> names;
};

/// Reads a library's ABI stamp and names from the file, without loading it. Throws Error naming
/// the file and the problem: not a gradsim plugin, built for another ABI or C++ runtime, a
/// corrupt names section.
LibraryFile inspect_library(const std::filesystem::path& file);

/// Loads one library with RTLD_NOW (after inspect_library). Throws Error naming the file and
/// the problem: cannot be loaded (with the dlerror text), what inspect_library finds, or a list
/// of plugins other than its names section says.
std::unique_ptr<LoadedLibrary> load_library(const std::filesystem::path& file);

/// True for the files a directory scan considers: gradsim-*.so (the platform's suffix).
bool is_plugin_file_name(const std::filesystem::path& file);

/// The directory of the built-in plugins, relative to the running program:
/// <prefix>/bin/gradsim -> <prefix>/lib/gradsim/plugins (same layout in build and install).
std::filesystem::path default_plugin_dir();

/// The directory of the shipped specs: <prefix>/share/gradsim/sims.
std::filesystem::path default_sims_dir();

/// The directory holding the Python package `gradsim`: <prefix>/share/gradsim/python.
std::filesystem::path default_python_dir();

}  // namespace gradsim

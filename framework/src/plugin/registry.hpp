// The Registry: every plugin found, by kind and name. Filled on one thread before any
// simulation starts, read-only afterwards (so simulations may share it across threads).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gradsim/plugin.hpp>

#include "plugin/loader.hpp"

namespace gradsim {

class Registry {
 public:
  /// A plugin and the library it came from.
  struct Entry {
    const PluginInfo* info;
    const LoadedLibrary* library;
  };

  /// Adds every plugin of a loaded library. Throws Error if a name is already taken.
  void add(std::unique_ptr<LoadedLibrary> lib);

  /// Loads each gradsim-* library of each directory (in order; a missing directory is
  /// skipped) and each library file named directly. A directory or file that every user may
  /// write to is refused. Returns one error line per failure; the libraries that did load stay
  /// registered.
  std::vector<std::string> load(const std::vector<std::filesystem::path>& paths);

  /// nullptr if there is no such plugin.
  const Entry* find(Kind kind, const std::string& name) const;
  /// The plugin or an Error like `unknown activation "tahn" (did you mean "tanh"?)`.
  const Entry& get(Kind kind, const std::string& name) const;
  /// The registered names of a kind closest to `name` (edit distance), best first.
  std::vector<std::string> suggest(Kind kind, const std::string& name) const;

  /// All plugins, sorted by kind then name.
  std::vector<Entry> entries() const;

 private:
  std::vector<std::unique_ptr<LoadedLibrary>> libs_;
  std::vector<std::filesystem::path> searched_;  // for "unknown plugin" messages
  std::map<std::pair<Kind, std::string>, Entry> index_;
};

/// The Levenshtein distance between two words (for "did you mean").
std::size_t edit_distance(const std::string& a, const std::string& b);

/// Whether every user may write to `path` (then anyone could plant code there).
bool writable_by_anyone(const std::filesystem::path& path);

/// The directories searched by default: each entry of $GRADSIM_PLUGIN_PATH (':'-separated,
/// absolute paths only: throws Error for a relative one), then the built-in plugin directory.
std::vector<std::filesystem::path> default_plugin_paths();

}  // namespace gradsim

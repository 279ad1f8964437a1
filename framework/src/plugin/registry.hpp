// The Registry: every plugin found, by kind and name. Filled on one thread before any
// simulation starts; afterwards only a library's first use changes it (under a once flag per
// library), so simulations may share it across threads.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
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

  /// Finds each gradsim-* library of each directory (in order; a missing directory is
  /// skipped) and each library file named directly. A directory or file that every user may
  /// write to is refused. Every library's stamp is checked now; a library whose file names its
  /// plugins (the registration macros write them) is loaded when one of them is first looked
  /// up, the others now. Returns one error line per failure; the libraries that did not fail
  /// stay registered.
  std::vector<std::string> load(const std::vector<std::filesystem::path>& paths);

  /// nullptr if there is no such plugin. Loads the plugin's library on first use: throws
  /// Error if that fails.
  const Entry* find(Kind kind, const std::string& name) const;
  /// The plugin or an Error like `unknown activation "tahn" (did you mean "tanh"?)`.
  const Entry& get(Kind kind, const std::string& name) const;
  /// The registered names of a kind closest to `name` (edit distance), best first.
  std::vector<std::string> suggest(Kind kind, const std::string& name) const;

  /// All plugins, sorted by kind then name (every library loaded).
  std::vector<Entry> entries() const;
  bool empty() const { return index_.empty(); }
  /// How many of the registered libraries have been loaded (not while another thread looks up).
  std::size_t loaded_libraries() const;

 private:
  struct Library {
    std::filesystem::path file;
    std::unique_ptr<LoadedLibrary> loaded;  // set once, under `once`
    std::once_flag once;
  };
  struct Slot {
    Library* library;
    mutable Entry entry;  // filled when the library is loaded
  };
  void add_names(Library& lib, const std::vector<std::pair<Kind, std::string>>& names);
  /// Fills the entries of lib's plugins (under lib.once).
  void install(Library& lib, std::unique_ptr<LoadedLibrary> loaded) const;
  const Slot& ready(const Slot& slot) const;

  std::vector<std::unique_ptr<Library>> libs_;
  std::vector<std::filesystem::path> searched_;  // for "unknown plugin" messages
  std::map<std::pair<Kind, std::string>, Slot> index_;
};

/// The Levenshtein distance between two words (for "did you mean").
std::size_t edit_distance(const std::string& a, const std::string& b);

/// Whether every user may write to `path` (then anyone could plant code there).
bool writable_by_anyone(const std::filesystem::path& path);

/// The directories searched by default: each entry of $GRADSIM_PLUGIN_PATH (':'-separated,
/// absolute paths only: throws Error for a relative one), then the built-in plugin directory.
std::vector<std::filesystem::path> default_plugin_paths();

}  // namespace gradsim

#include "plugin/registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <sstream>

#include <sys/stat.h>

#include "error.hpp"
#include "utf8.hpp"

namespace gradsim {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

void Registry::add_names(Library& lib, const std::vector<std::pair<Kind, std::string>>& names) {
  for (const auto& [kind, name] : names)
    if (auto it = index_.find({kind, name}); it != index_.end())
      throw Error(lib.file.string() + ": " + kind_name(kind) + " \"" + name + "\" is already provided by " +
                  it->second.library->file.string() + "; rename one of them or leave one directory out");
  for (const auto& key : names) index_.insert_or_assign(key, Slot{&lib, Entry{nullptr, nullptr}});
}

void Registry::add(std::unique_ptr<LoadedLibrary> loaded) {
  auto lib = std::make_unique<Library>();
  lib->file = loaded->file;
  std::vector<std::pair<Kind, std::string>> names;
  for (const auto& p : loaded->plugins) names.emplace_back(p.kind, p.name);
  add_names(*lib, names);
  std::call_once(lib->once, [&] { install(*lib, std::move(loaded)); });
  libs_.push_back(std::move(lib));
}

void Registry::install(Library& lib, std::unique_ptr<LoadedLibrary> loaded) const {
  for (const auto& p : loaded->plugins) index_.at({p.kind, p.name}).entry = Entry{&p, loaded.get()};
  lib.loaded = std::move(loaded);
}

const Registry::Slot& Registry::ready(const Slot& slot) const {
  // If loading throws, the flag stays unset: the error repeats at the next use. load_library
  // checks that the library has exactly the plugins its names promised.
  std::call_once(slot.library->once, [&] { install(*slot.library, load_library(slot.library->file)); });
  return slot;
}

std::size_t Registry::loaded_libraries() const {
  std::size_t n = 0;
  for (const auto& lib : libs_) n += lib->loaded != nullptr;
  return n;
}

std::vector<std::string> Registry::load(const std::vector<std::filesystem::path>& paths) {
  std::vector<std::filesystem::path> files;
  std::vector<std::string> failures;
  for (const auto& path : paths) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) searched_.push_back(path);
    // Code from a place anyone may write to is code anyone may run: refuse it.
    if (writable_by_anyone(path)) {
      failures.push_back(escape_utf8(path.string()) + ": writable by every user, so anyone could put a plugin "
                         "there; make it writable by its owner only (chmod o-w)");
      continue;
    }
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<std::filesystem::path> found;
      for (const auto& f : std::filesystem::directory_iterator(path, ec))
        if (is_plugin_file_name(f.path())) found.push_back(f.path());
      std::sort(found.begin(), found.end());  // deterministic registration order
      files.insert(files.end(), found.begin(), found.end());
    } else if (std::filesystem::exists(path, ec)) {
      files.push_back(path);
    }
  }
  std::set<std::filesystem::path> seen;
  for (const auto& lib : libs_) seen.insert(std::filesystem::weakly_canonical(lib->file));
  for (const auto& f : files) {
    if (!seen.insert(std::filesystem::weakly_canonical(f)).second) continue;
    if (writable_by_anyone(f)) {
      failures.push_back(escape_utf8(f.string()) + ": writable by every user, so anyone could replace it; "
                         "make it writable by its owner only (chmod o-w)");
      continue;
    }
    try {
      const auto inspected = inspect_library(f);
      if (inspected.names && !inspected.names->empty()) {  // loaded when first used
        auto lib = std::make_unique<Library>();
        lib->file = f;
        add_names(*lib, *inspected.names);
        libs_.push_back(std::move(lib));
      } else {
        add(load_library(f));
      }
    } catch (const Error& e) {
      failures.push_back(e.what());
    }
  }
  return failures;
}

const Registry::Entry* Registry::find(Kind kind, const std::string& name) const {
  auto it = index_.find({kind, name});
  return it == index_.end() ? nullptr : &ready(it->second).entry;
}

std::vector<std::string> Registry::suggest(Kind kind, const std::string& name) const {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const auto& [key, slot] : index_)
    if (key.first == kind) scored.emplace_back(edit_distance(name, key.second), key.second);
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (const auto& [d, n] : scored)
    if (d <= std::max<std::size_t>(2, name.size() / 3) && out.size() < 3) out.push_back(n);
  return out;
}

const Registry::Entry& Registry::get(Kind kind, const std::string& name) const {
  if (auto* e = find(kind, name)) return *e;
  std::ostringstream msg;
  msg << "unknown " << kind_name(kind) << " \"" << name << "\"";
  auto close = suggest(kind, name);
  if (!close.empty()) {
    msg << " (did you mean ";
    for (std::size_t i = 0; i < close.size(); ++i)
      msg << (i ? i + 1 == close.size() ? " or " : ", " : "") << '"' << close[i] << '"';
    msg << "?)";
  }
  msg << "; searched ";
  for (std::size_t i = 0; i < searched_.size(); ++i) msg << (i ? ", " : "") << escape_utf8(searched_[i].string());
  if (searched_.empty()) msg << "no plugin directory";
  if (close.empty()) msg << "; `gradsim plugins` lists the " << kind_name(kind) << "s found";
  throw Error(msg.str());
}

std::vector<Registry::Entry> Registry::entries() const {
  std::vector<Entry> out;
  for (const auto& [key, slot] : index_) out.push_back(ready(slot).entry);
  return out;
}

bool writable_by_anyone(const std::filesystem::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IWOTH);
}

std::vector<std::filesystem::path> default_plugin_paths() {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv("GRADSIM_PLUGIN_PATH")) {
    std::stringstream ss(env);
    for (std::string dir; std::getline(ss, dir, ':');) {
      if (dir.empty()) continue;
      // A relative entry would mean something else in every directory gradsim is started from.
      if (std::filesystem::path(dir).is_relative())
        throw Error("GRADSIM_PLUGIN_PATH entry '" + dir + "' is relative; use absolute paths");
      out.emplace_back(dir);
    }
  }
  out.push_back(default_plugin_dir());
  return out;
}

}  // namespace gradsim

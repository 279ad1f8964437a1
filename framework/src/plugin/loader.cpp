// The only file that includes Boost.DLL. Order of checks (nothing of a library runs before
// its stamp has matched): read the stamp from the file -> compare -> read the names section
// -> dlopen (RTLD_NOW, so a missing symbol fails here) -> has list? -> call list -> the list
// is what the names said.
#include "plugin/loader.hpp"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>

#include <gradsim/abi.hpp>

#include "plugin/stamp.hpp"

#include "error.hpp"

namespace gradsim {

namespace {

const std::string kHint = "rebuild it with gradsim_add_plugin()";
constexpr const char* kNamesSection = "gradsim_names";

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw Error(file.string() + ": " + what);
}

// Boost's message is "boost::dll::shared_library::load() failed (dlerror system message:
// <text>): Bad file descriptor"; the dlerror text is the useful part.
std::string dlerror_text(const std::string& what, const std::string& file) {
  const std::string key = "system message: ";
  auto b = what.find(key);
  if (b == std::string::npos) return what;
  b += key.size();
  auto e = what.rfind("): ");
  std::string text = what.substr(b, e == std::string::npos || e < b ? std::string::npos : e - b);
  // dlerror repeats the file name first: "<file>: invalid ELF header"
  if (text.rfind(file + ": ", 0) == 0) text = text.substr(file.size() + 2);
  return text;
}

// "<kind>\0<name>\0" entries, NUL padding between them.
std::vector<std::pair<Kind, std::string>> parse_names(const std::string& bytes, const std::filesystem::path& file) {
  std::vector<std::pair<Kind, std::string>> out;
  auto corrupt = [&] { fail(file, std::string("corrupt '") + kNamesSection + "' section; " + kHint); };
  std::size_t at = 0;
  auto next = [&] {
    const std::size_t end = bytes.find('\0', at);
    if (end == std::string::npos) corrupt();
    std::string text = bytes.substr(at, end - at);
    at = end + 1;
    return text;
  };
  while (true) {
    while (at < bytes.size() && bytes[at] == '\0') ++at;
    if (at == bytes.size()) return out;
    const std::string kind = next(), name = next();
    int k = 0;
    while (k < kKindCount && kind != kind_name(Kind(k))) ++k;
    if (k == kKindCount || name.empty()) corrupt();
    out.emplace_back(Kind(k), name);
  }
}

}  // namespace

LibraryFile inspect_library(const std::filesystem::path& file) {
  if (!std::filesystem::exists(file)) fail(file, "no such file; check the path");
  LibraryFile out;
  const auto bytes = read_plugin_bytes(file, kAbiSymbol, kNamesSection);
  const std::string mismatch = stamp_mismatch(bytes.symbol, out.sdk_version);
  if (!mismatch.empty()) fail(file, mismatch);
  if (bytes.section) out.names = parse_names(*bytes.section, file);
  return out;
}

std::unique_ptr<LoadedLibrary> load_library(const std::filesystem::path& file) {
  namespace dll = boost::dll;
  const LibraryFile inspected = inspect_library(file);
  auto lib = std::make_shared<dll::shared_library>();
  try {
    lib->load(file.string(), dll::load_mode::rtld_now | dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    const std::string text = dlerror_text(e.what(), file.string());
    const bool undefined = text.find("undefined symbol") != std::string::npos;
    fail(file, "cannot load: " + text +
                   (undefined ? "; link the plugin against the library that defines it"
                              : "; is it a shared library built for this machine?"));
  }
  if (!lib->has(kListSymbol))
    fail(file, std::string("has an ABI stamp but no '") + kListSymbol + "' function; " + kHint);

  auto out = std::make_unique<LoadedLibrary>();
  out->file = file, out->sdk_version = inspected.sdk_version;
  std::size_t n = 0;
  const PluginInfo* list = lib->get<const PluginInfo*(std::size_t*)>(kListSymbol)(&n);
  if (n == 0) fail(file, "registers no plugin; add a GRADSIM_ACTIVATION(...) or similar line");
  if (!list) fail(file, "'" + std::string(kListSymbol) + "' returned no list; " + kHint);
  out->plugins.assign(list, list + n);
  if (inspected.names) {  // what was promised before loading is what the library has
    std::vector<std::pair<Kind, std::string>> listed, named = *inspected.names;
    for (const auto& p : out->plugins) listed.emplace_back(p.kind, p.name);
    std::sort(listed.begin(), listed.end()), std::sort(named.begin(), named.end());
    if (listed != named)
      fail(file, std::string("registers other plugins than its '") + kNamesSection + "' section names; " + kHint);
  }
  out->lib = std::move(lib);
  return out;
}

bool is_plugin_file_name(const std::filesystem::path& file) {
  const std::string name = file.filename().string();
  return name.rfind("gradsim-", 0) == 0 &&
         file.extension().string() == boost::dll::shared_library::suffix().string();
}

std::filesystem::path default_plugin_dir() {
  return (std::filesystem::path(boost::dll::program_location().parent_path().string()) / ".." / "lib" / "gradsim" /
          "plugins").lexically_normal();
}

std::filesystem::path default_python_dir() {
  return (std::filesystem::path(boost::dll::program_location().parent_path().string()) / ".." / "share" / "gradsim" /
          "python").lexically_normal();
}

std::filesystem::path default_sims_dir() {
  return (std::filesystem::path(boost::dll::program_location().parent_path().string()) / ".." / "share" / "gradsim" /
          "sims").lexically_normal();
}

}  // namespace gradsim

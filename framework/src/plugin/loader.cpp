// The only file that includes Boost.DLL. Order of checks (nothing of a library runs before
// its stamp has matched): read the stamp from the file -> compare -> dlopen (RTLD_NOW, so a
// missing symbol fails here) -> has list? -> call list.
#include "plugin/loader.hpp"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <gradsim/abi.hpp>

#include "plugin/stamp.hpp"

#include "error.hpp"

namespace gradsim {

namespace {

const std::string kHint = "rebuild it with gradsim_add_plugin()";

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

}  // namespace

std::unique_ptr<LoadedLibrary> load_library(const std::filesystem::path& file) {
  namespace dll = boost::dll;
  if (!std::filesystem::exists(file)) fail(file, "no such file; check the path");
  std::string sdk;
  const std::string mismatch = stamp_mismatch(read_symbol_bytes(file, kAbiSymbol), sdk);
  if (!mismatch.empty()) fail(file, mismatch);
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
  out->file = file, out->sdk_version = sdk;
  std::size_t n = 0;
  const PluginInfo* list = lib->get<const PluginInfo*(std::size_t*)>(kListSymbol)(&n);
  if (n == 0) fail(file, "registers no plugin; add a GRADSIM_ACTIVATION(...) or similar line");
  if (!list) fail(file, "'" + std::string(kListSymbol) + "' returned no list; " + kHint);
  out->plugins.assign(list, list + n);
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

// A minimal ELF64 reader: enough to find one exported data symbol in the dynamic symbol table,
// or one section, and read its bytes from the file, so the ABI stamp is checked (and the names
// of the plugins read) before dlopen runs any code of the library (static constructors included).
#include "plugin/stamp.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <gradsim/layout.hpp>

#include "error.hpp"

namespace gradsim {

namespace {

#if defined(__x86_64__)
constexpr unsigned kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr unsigned kMachine = EM_AARCH64;
#else
constexpr unsigned kMachine = EM_NONE;  // not checked
#endif

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw Error(file.string() + ": " + what);
}

// The file's bytes, mapped read-only (no copy: only the headers and one symbol are read).
class Mapped {
 public:
  explicit Mapped(const std::filesystem::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(file, "cannot load: cannot open the file; check its permissions");
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      size_ = std::size_t(st.st_size);
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      data_ = p == MAP_FAILED ? nullptr : static_cast<const char*>(p);
    }
    ::close(fd);
    if (!data_ && size_ > 0) fail(file, "cannot load: cannot read the file; check its permissions");
  }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
  ~Mapped() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  const char* data() const { return data_; }
  std::size_t size() const { return data_ ? size_ : 0; }

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

template <class S>
S read_at(const Mapped& data, std::uint64_t offset, const std::filesystem::path& file) {
  if (offset > data.size() || data.size() - offset < sizeof(S)) fail(file, "cannot load: truncated ELF file; rebuild it");
  S s;
  std::memcpy(&s, data.data() + offset, sizeof(S));
  return s;
}

const std::string kHint = "; is it a shared library built for this machine?";

// The ELF header of a 64-bit shared library for this machine, or Error.
Elf64_Ehdr library_header(const Mapped& data, const std::filesystem::path& file) {
  if (data.size() < EI_NIDENT || std::memcmp(data.data(), ELFMAG, SELFMAG) != 0)
    fail(file, "cannot load: invalid ELF header" + kHint);
  if (data.data()[EI_CLASS] != ELFCLASS64 || data.data()[EI_DATA] != ELFDATA2LSB)
    fail(file, "cannot load: a 32-bit or big-endian ELF file" + kHint);
  const auto eh = read_at<Elf64_Ehdr>(data, 0, file);
  if (eh.e_type != ET_DYN) fail(file, "cannot load: not a shared library (ELF type " + std::to_string(eh.e_type) + ")" + kHint);
  if (kMachine != EM_NONE && eh.e_machine != kMachine)
    fail(file, "cannot load: built for another machine (ELF machine " + std::to_string(eh.e_machine) + ")" + kHint);
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) fail(file, "cannot load: corrupt ELF section table" + kHint);
  return eh;
}

}  // namespace

PluginBytes read_plugin_bytes(const std::filesystem::path& file, const std::string& symbol, const std::string& name) {
  const Mapped data(file);
  const auto eh = library_header(data, file);
  auto section = [&](std::uint64_t i) { return read_at<Elf64_Shdr>(data, eh.e_shoff + i * sizeof(Elf64_Shdr), file); };
  // The NUL-terminated string at `at` of a table `size` long is `text`.
  auto is = [&](std::uint64_t table, std::uint64_t size, std::uint64_t at, const std::string& text) {
    if (at >= size || table > data.size() || at >= data.size() - table) return false;  // (no wrap-around)
    const std::size_t room = std::min<std::uint64_t>(data.size() - table - at, text.size() + 1);
    return room == text.size() + 1 && std::memcmp(data.data() + table + at, text.c_str(), room) == 0;
  };
  PluginBytes out;
  bool found = false;
  for (std::uint64_t i = 0; i < eh.e_shnum && !found; ++i) {
    const auto sh = section(i);
    if (sh.sh_type != SHT_DYNSYM || sh.sh_entsize != sizeof(Elf64_Sym)) continue;
    const auto strtab = section(sh.sh_link);
    for (std::uint64_t k = 0; k < sh.sh_size / sizeof(Elf64_Sym) && !found; ++k) {
      const auto sym = read_at<Elf64_Sym>(data, sh.sh_offset + k * sizeof(Elf64_Sym), file);
      if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= eh.e_shnum) continue;
      if (!is(strtab.sh_offset, strtab.sh_size, sym.st_name, symbol)) continue;
      const auto home = section(sym.st_shndx);
      const std::size_t size = std::min<std::uint64_t>(sym.st_size, 1 << 16);
      out.symbol.assign(size, 0);
      found = true;
      if (home.sh_type == SHT_NOBITS) break;  // zero-initialised
      const std::uint64_t offset = home.sh_offset + (sym.st_value - home.sh_addr);
      if (sym.st_value < home.sh_addr || offset > data.size() || data.size() - offset < size)
        fail(file, "cannot load: corrupt ELF symbol '" + symbol + "'" + kHint);
      std::memcpy(out.symbol.data(), data.data() + offset, size);
    }
  }
  if (!found)
    fail(file, "not a gradsim plugin (no '" + symbol + "' symbol); was it built with gradsim_add_plugin()?");
  if (name.empty() || eh.e_shstrndx == SHN_UNDEF || eh.e_shstrndx >= eh.e_shnum) return out;
  const auto names = section(eh.e_shstrndx);
  for (std::uint64_t i = 0; i < eh.e_shnum; ++i) {
    const auto sh = section(i);
    if (!is(names.sh_offset, names.sh_size, sh.sh_name, name)) continue;
    const std::size_t size = std::min<std::uint64_t>(sh.sh_size, 1 << 20);
    if (sh.sh_type == SHT_NOBITS) return out.section = std::string(size, '\0'), out;
    if (sh.sh_offset > data.size() || data.size() - sh.sh_offset < size)
      fail(file, "cannot load: corrupt ELF section '" + name + "'" + kHint);
    out.section = std::string(data.data() + sh.sh_offset, size);
    return out;
  }
  return out;
}

std::string stamp_mismatch(const std::vector<unsigned char>& bytes, std::string& sdk_version) {
  static constexpr gradsim_abi_stamp ours = detail::make_stamp();
  const std::string rebuild = "; rebuild it with gradsim_add_plugin() against this gradsim";
  std::uint32_t head[2] = {0, 0};
  std::memcpy(head, bytes.data(), std::min(bytes.size(), sizeof head));
  const bool same_layout = head[0] == ours.abi_version && head[1] == sizeof ours && bytes.size() >= sizeof ours;
  gradsim_abi_stamp s{};
  if (same_layout) std::memcpy(&s, bytes.data(), sizeof s);
  auto text = [](const char* field, std::size_t n) { return std::string(field, strnlen(field, n)); };
  sdk_version = same_layout ? text(s.sdk_version, sizeof s.sdk_version) : "?";
  const std::string version = GRADSIM_VERSION_STRING;
  if (!same_layout)
    return "built for plugin ABI " + std::to_string(head[0]) + ", this gradsim " + version + " expects ABI " +
           std::to_string(GRADSIM_ABI_VERSION) + rebuild;
  // SDK versions: the same major.minor (the CMake package's SameMinorVersion); patches may differ.
  auto minor = [](const std::string& v) { return v.substr(0, v.find('.', v.find('.') + 1)); };
  if (minor(sdk_version) != minor(version))
    return "built against the gradsim " + sdk_version + " SDK; this gradsim " + version + " loads plugins built against " +
           minor(version) + ".x" + rebuild;
  if (text(s.cxx_runtime, sizeof s.cxx_runtime) != text(ours.cxx_runtime, sizeof ours.cxx_runtime))
    return "built for C++ runtime '" + text(s.cxx_runtime, sizeof s.cxx_runtime) + "', this gradsim uses '" +
           ours.cxx_runtime + "'" + rebuild + " and the same compiler flags";
  if (text(s.eigen, sizeof s.eigen) != text(ours.eigen, sizeof ours.eigen))
    return "built with '" + text(s.eigen, sizeof s.eigen) + "', this gradsim uses '" + ours.eigen + "'" + rebuild +
           " and the same compiler flags (link gradsim::sdk, which sets Eigen's allocator)";
  for (int i = 0; i < GRADSIM_LAYOUT_TYPES; ++i)
    for (int k = 0; k < 2; ++k)
      if (s.layout[2 * i + k] != ours.layout[2 * i + k])
        return std::string(k ? "alignof(" : "sizeof(") + detail::layout_names[i] + ") is " +
               std::to_string(s.layout[2 * i + k]) + " in the plugin, " + std::to_string(ours.layout[2 * i + k]) +
               " in this gradsim" + rebuild + " and the same compiler and flags";
  return "";
}

}  // namespace gradsim

// Reading a plugin's ABI stamp from the library file, without loading it, and comparing it
// with gradsim's own.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace gradsim {

/// What gradsim reads of a plugin library's file before loading it.
struct PluginBytes {
  std::vector<unsigned char> symbol;   ///< the bytes of an exported data symbol (at most 64 KiB)
  std::optional<std::string> section;  ///< the bytes of a section (at most 1 MiB), if it has one
};

/// Reads the exported data symbol `symbol` of an ELF shared library and its section `section`
/// (none if empty) from the file, mapped once. Throws Error "<file>: cannot load: ..." for a
/// file that is not an ELF library for this machine or is corrupt, and "<file>: not a gradsim
/// plugin ..." when the symbol is missing.
PluginBytes read_plugin_bytes(const std::filesystem::path& file, const std::string& symbol, const std::string& section);

/// Why a stamp (the bytes of a plugin's gradsim_plugin_abi) does not match this gradsim's,
/// as the rest of a one-line message ("built for plugin ABI 1, ...; rebuild it with
/// gradsim_add_plugin()"); empty if it matches. `sdk_version` receives the plugin's SDK version.
std::string stamp_mismatch(const std::vector<unsigned char>& bytes, std::string& sdk_version);

}  // namespace gradsim

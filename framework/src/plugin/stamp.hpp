// Reading a plugin's ABI stamp from the library file, without loading it, and comparing it
// with gradsim's own.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace gradsim {

/// The bytes of the exported data symbol `symbol` of an ELF shared library, read from the
/// file. Throws Error "<file>: cannot load: ..." for a file that is not an ELF library for
/// this machine, and "<file>: not a gradsim plugin ..." when the symbol is missing.
std::vector<unsigned char> read_symbol_bytes(const std::filesystem::path& file, const std::string& symbol);

/// Why a stamp (the bytes of a plugin's gradsim_plugin_abi) does not match this gradsim's,
/// as the rest of a one-line message ("built for plugin ABI 1, ...; rebuild it with
/// gradsim_add_plugin()"); empty if it matches. `sdk_version` receives the plugin's SDK version.
std::string stamp_mismatch(const std::vector<unsigned char>& bytes, std::string& sdk_version);

}  // namespace gradsim

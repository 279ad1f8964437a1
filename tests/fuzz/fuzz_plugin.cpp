// libFuzzer target: what gradsim reads of a plugin library's file before loading it (the ELF
// header and section table, the ABI stamp, the `gradsim_names` section). Any input must give
// a LibraryFile or a gradsim::Error, never a crash or a hang; nothing of the file is run.
// The seeds are real plugins of the build (scripts/sanitize.sh copies them in).
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "error.hpp"
#include "plugin/loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string file = "/tmp/gradsim_fuzz_plugin_" + std::to_string(::getpid()) + ".so";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  try {
    (void)gradsim::inspect_library(file);
  } catch (const gradsim::Error&) {
  }
  return 0;
}

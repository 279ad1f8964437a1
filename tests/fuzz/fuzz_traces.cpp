// libFuzzer target: the traces reader and the resume path. The input is written as a traces
// file, read record by record, and then offered to --resume against the header of a real run.
// Any input must give records or a gradsim::Error, never a crash, a hang or an allocation
// beyond kMaxRecordBytes.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "error.hpp"
#include "fuzz_common.hpp"
#include "io/trace_io.hpp"
#include "run/sweep.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string file = "/tmp/gradsim_fuzz_traces_" + std::to_string(::getpid()) + ".pb";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  gradsim::v1::TraceHeader header;
  try {
    gradsim::TraceReader reader(file);
    gradsim::v1::SimTrace t;
    while (reader.next(t)) {
    }
    header = reader.header();
  } catch (const gradsim::Error&) {
  }
  try {  // resume against the file's own header (so the spec matches and records are walked)
    gradsim::prepare_resume(file, header, [](const gradsim::v1::SimTrace&) {});
  } catch (const gradsim::Error&) {
  }
  return 0;
}

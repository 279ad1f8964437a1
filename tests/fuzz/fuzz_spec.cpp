// libFuzzer target: the spec parser and validator, text format and JSON. Any input must give
// a parsed and validated spec or a gradsim::Error: no crash, no sanitizer report, no hang, no
// allocation beyond the limits. The first byte picks the syntax (odd: JSON).
//
// Validation builds each distinct network; here only those whose memory estimate is under
// 64 MB (a spec asking for more is valid, and building it would only measure the machine).
#include <cstdint>
#include <string>

#include "error.hpp"
#include "network/engine.hpp"
#include "network/network.hpp"
#include "fuzz_common.hpp"
#include "spec/spec.hpp"

using gradsim::fuzz::registry;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool json = data[0] & 1;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto spec = gradsim::parse_spec(text, json ? "f.json" : "f.textproto");
    gradsim::validate_with(
        spec, registry(),
        [](const gradsim::v1::SimSpec& sim) {
          if (gradsim::estimate_bytes(sim) < (64u << 20)) gradsim::check_buildable(sim, registry());
        },
        /*max_sims=*/1000);
  } catch (const gradsim::Error&) {
  }
  return 0;
}

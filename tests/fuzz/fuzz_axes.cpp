// libFuzzer target: axis expansion. A sweep in text format (without validation, which would
// stop at the first bad value) is expanded: its simulation count, and the simulations at the
// first, last and a few inner indices, each resolved against the built-in plugins. Any input
// must give simulations or a SpecError/Error.
#include <google/protobuf/text_format.h>

#include <cstdint>
#include <string>

#include "error.hpp"
#include "fuzz_common.hpp"
#include "spec/spec.hpp"

using gradsim::fuzz::registry;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gradsim::v1::SweepSpec sweep;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(reinterpret_cast<const char*>(data), size), &sweep))
    return 0;
  try {
    const std::uint64_t n = gradsim::sim_count(sweep);
    for (std::uint64_t i : {std::uint64_t(0), n / 3, n / 2, n - 1}) {
      if (i >= n) continue;
      auto sim = gradsim::sim_at(sweep, i);
      gradsim::resolve(sim, registry());
    }
  } catch (const gradsim::SpecError&) {
  } catch (const gradsim::Error&) {
  }
  return 0;
}

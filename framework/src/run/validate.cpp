#include "run/validate.hpp"

#include <algorithm>

#include "network/engine.hpp"

namespace gradsim {

Validation validate(const SpecFile& spec, const Registry& registry, std::uint64_t max_sims) {
  std::uint64_t largest = 0;
  Validation v = validate_with(
      spec, registry,
      [&](const v1::SimSpec& sim) {
        check_buildable(sim, registry);
        largest = std::max(largest, estimate_bytes(sim));
      },
      max_sims);
  v.max_sim_bytes = largest;
  return v;
}

}  // namespace gradsim

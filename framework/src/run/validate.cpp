#include "run/validate.hpp"

#include "network/engine.hpp"

namespace gradsim {

Validation validate(const SpecFile& spec, const Registry& registry) {
  return validate_with(spec, registry, [&](const v1::SimSpec& sim) { check_buildable(sim, registry); });
}

}  // namespace gradsim

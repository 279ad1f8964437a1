// The one exception type gradsim throws for a user's mistake: its what() is a whole line,
// shaped like compiler output ("<where>: <what>; <how to fix>"), ready to print.
#pragma once

#include <stdexcept>
#include <string>

namespace gradsim {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The machine ran out of something a simulation needed (memory): not a result to record,
/// since with fewer simulations at once it would have run. Stops a sweep.
class ResourceError : public Error {
 public:
  using Error::Error;
};

}  // namespace gradsim

// Must not compile: an activation without df.
#include <gradsim/gradsim.hpp>

struct HalfDone {
  template <class T> static T f(T x) { return x; }
};
GRADSIM_ACTIVATION("half_done", HalfDone)

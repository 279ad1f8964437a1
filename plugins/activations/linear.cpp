// linear: the identity, f(x) = x.
#include <gradsim/gradsim.hpp>

struct Linear {
  static constexpr const char* help = "identity: f(x) = x";
  template <class T> static T f(T x) { return x; }
  template <class T> static T df(T) { return T(1); }
};
GRADSIM_ACTIVATION("linear", Linear)

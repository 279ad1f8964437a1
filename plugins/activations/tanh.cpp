// tanh: f(x) = tanh(x), f'(x) = 1 - tanh(x)^2.
#include <gradsim/gradsim.hpp>

struct Tanh {
  static constexpr const char* help = "hyperbolic tangent: f(x) = tanh(x)";
  template <class T> static T f(T x) { return gradsim::fn::tanh(x); }
  template <class T> static T df(T x) { return df(x, f(x)); }
  template <class T> static T df(T, T y) { return T(1) - y * y; }  // from y = tanh(x)
};
GRADSIM_ACTIVATION("tanh", Tanh)

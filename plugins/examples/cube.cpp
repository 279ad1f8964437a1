// An activation plugin in two scalar functions and one registration line: f(x) = x^3.
// Its derivative 3x^2 vanishes near 0 and explodes far from it: a deep cube net does both.
#include <gradsim/gradsim.hpp>

struct Cube {
  static constexpr const char* help = "f(x) = x^3 (example plugin)";
  template <class T> static T f(T x) { return x * x * x; }
  template <class T> static T df(T x) { return T(3) * x * x; }
};
GRADSIM_ACTIVATION("cube", Cube)

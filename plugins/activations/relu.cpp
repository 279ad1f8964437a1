// relu: f(x) = max(x, 0); its derivative at 0 is taken as 0.
#include <gradsim/gradsim.hpp>

struct Relu {
  static constexpr const char* help = "rectified linear: f(x) = max(x, 0)";
  template <class T> static T f(T x) { return x > T(0) ? x : T(0); }
  template <class T> static T df(T x) { return x > T(0) ? T(1) : T(0); }
};
GRADSIM_ACTIVATION("relu", Relu)

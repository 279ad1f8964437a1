// relu: f(x) = max(x, 0); its derivative at 0 is taken as 0. NaN stays NaN (as in torch), so
// a diverged network is not silently reset to zeros.
#include <gradsim/gradsim.hpp>

struct Relu {
  static constexpr const char* help = "rectified linear: f(x) = max(x, 0)";
  template <class T> static T f(T x) { return x < T(0) ? T(0) : x; }
  template <class T> static T df(T x) { return x > T(0) ? T(1) : T(0); }
  static std::vector<double> kinks() { return {0.0}; }  // where f' jumps
};
GRADSIM_ACTIVATION("relu", Relu)

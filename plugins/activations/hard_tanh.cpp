// hard_tanh: f(x) = clamp(x, -1, 1); f'(x) = 1 inside, 0 outside (0 at the corners).
#include <gradsim/gradsim.hpp>

struct HardTanh {
  static constexpr const char* help = "f(x) = min(max(x, -1), 1)";
  template <class T> static T f(T x) { return x > T(1) ? T(1) : x < T(-1) ? T(-1) : x; }  // NaN stays NaN
  template <class T> static T df(T x) { return x > T(-1) && x < T(1) ? T(1) : T(0); }
  static std::vector<double> kinks() { return {-1.0, 1.0}; }  // where f' jumps
};
GRADSIM_ACTIVATION("hard_tanh", HardTanh)

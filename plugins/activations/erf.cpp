// erf: f(x) = erf(x), f'(x) = 2/sqrt(pi) e^{-x^2}. A sigmoid-like activation whose Gaussian
// integrals have closed forms (the arcsine kernel, Williams 1997), so mean-field theory can be
// checked exactly on it.
#include <gradsim/gradsim.hpp>

struct Erf {
  static constexpr const char* help = "error function: f(x) = erf(x)";
  template <class T> static T f(T x) { return gradsim::fn::erf(x); }
  template <class T> static T df(T x) { return T(M_2_SQRTPI) * gradsim::fn::exp(-x * x); }
};
GRADSIM_ACTIVATION("erf", Erf)

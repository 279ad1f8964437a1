// sigmoid: f(x) = 1 / (1 + e^-x), f'(x) = f(x) (1 - f(x)), at most 1/4.
#include <gradsim/gradsim.hpp>

struct Sigmoid {
  static constexpr const char* help = "logistic: f(x) = 1 / (1 + exp(-x))";
  template <class T> static T f(T x) { return T(1) / (T(1) + gradsim::fn::exp(-x)); }
  template <class T> static T df(T x) { return df(x, f(x)); }
  template <class T> static T df(T, T s) { return s * (T(1) - s); }  // from s = sigmoid(x)
};
GRADSIM_ACTIVATION("sigmoid", Sigmoid)

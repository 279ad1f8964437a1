// silu (swish): f(x) = x sigmoid(x); f'(x) = s (1 + x (1 - s)), s = sigmoid(x).
#include <gradsim/gradsim.hpp>

struct Silu {
  static constexpr const char* help = "f(x) = x * sigmoid(x) (also called swish)";
  template <class T> static T sigmoid(T x) { return T(1) / (T(1) + gradsim::fn::exp(-x)); }
  template <class T> static T f(T x) { return x * sigmoid(x); }
  template <class T> static T df(T x) { const T s = sigmoid(x); return s * (T(1) + x * (T(1) - s)); }
};
GRADSIM_ACTIVATION("silu", Silu)
GRADSIM_ACTIVATION("swish", Silu)

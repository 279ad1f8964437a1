// softplus: f(x) = log(1 + e^x), a smooth relu; f'(x) = sigmoid(x).
// Written as max(x, 0) + log1p(e^-|x|) so that it neither overflows nor loses x for large x.
#include <gradsim/gradsim.hpp>

struct Softplus {
  static constexpr const char* help = "f(x) = log(1 + exp(x))";
  template <class T> static T f(T x) {
    const T ax = x < T(0) ? -x : x;
    return (x > T(0) ? x : T(0)) + gradsim::fn::log1p(gradsim::fn::exp(-ax));
  }
  template <class T> static T df(T x) { return T(1) / (T(1) + gradsim::fn::exp(-x)); }
};
GRADSIM_ACTIVATION("softplus", Softplus)

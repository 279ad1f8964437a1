// gelu (exact, erf form): f(x) = x Phi(x) = x/2 (1 + erf(x/sqrt 2)); f'(x) = Phi(x) + x phi(x).
#include <gradsim/gradsim.hpp>

struct Gelu {
  static constexpr const char* help = "f(x) = x * Phi(x), Phi the standard normal CDF (erf form)";
  template <class T> static T f(T x) { return T(0.5) * x * (T(1) + gradsim::fn::erf(x * T(M_SQRT1_2))); }
  template <class T> static T df(T x) {
    const T cdf = T(0.5) * (T(1) + gradsim::fn::erf(x * T(M_SQRT1_2)));
    const T pdf = T(0.5 * M_2_SQRTPI * M_SQRT1_2) * gradsim::fn::exp(T(-0.5) * x * x);  // 1/sqrt(2 pi) e^{-x^2/2}
    return cdf + x * pdf;
  }
};
GRADSIM_ACTIVATION("gelu", Gelu)

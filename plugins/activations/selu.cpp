// selu: lambda * elu_alpha(x) with the constants of Klambauer et al. (2017) that make
// N(0, 1) inputs a fixed point of mean 0 and variance 1 (with weights of variance 1/fan_in).
#include <gradsim/gradsim.hpp>

struct Selu {
  static constexpr const char* help = "scaled elu: lambda * (x if x > 0 else alpha*(exp(x)-1)), self-normalising";
  static constexpr double lambda = 1.0507009873554804934193349852946;
  static constexpr double alpha = 1.6732632423543772848170429916717;
  template <class T> static T f(T x) { return x > T(0) ? T(lambda) * x : T(lambda * alpha) * gradsim::fn::expm1(x); }
  template <class T> static T df(T x) { return x > T(0) ? T(lambda) : T(lambda * alpha) * gradsim::fn::exp(x); }
  static std::vector<double> kinks() { return {0.0}; }  // where f' jumps
};
GRADSIM_ACTIVATION("selu", Selu)

// leaky_relu: f(x) = x for x > 0, slope * x otherwise.
#include <gradsim/gradsim.hpp>

struct LeakyRelu {
  static constexpr const char* help = "f(x) = x if x > 0 else slope * x";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("slope", 0.01, 0.0, 1.0, "slope for x < 0")};
  }
  explicit LeakyRelu(const gradsim::Params& p) : slope(p.number("slope")) {}
  template <class T> T f(T x) const { return x < T(0) ? T(slope) * x : x; }  // NaN stays NaN
  template <class T> T df(T x) const { return x > T(0) ? T(1) : T(slope); }
  static std::vector<double> kinks() { return {0.0}; }  // where f' jumps
  double slope;
};
GRADSIM_ACTIVATION("leaky_relu", LeakyRelu)

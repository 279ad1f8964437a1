// elu: f(x) = x for x > 0, alpha (e^x - 1) otherwise; f'(x) = alpha e^x for x <= 0.
#include <gradsim/gradsim.hpp>

struct Elu {
  static constexpr const char* help = "f(x) = x if x > 0 else alpha * (exp(x) - 1)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("alpha", 1.0, 0.0, 1e3, "saturation value -alpha for x -> -inf")};
  }
  explicit Elu(const gradsim::Params& p) : alpha(p.number("alpha")) {}
  template <class T> T f(T x) const { return x > T(0) ? x : T(alpha) * gradsim::fn::expm1(x); }
  template <class T> T df(T x) const { return x > T(0) ? T(1) : T(alpha) * gradsim::fn::exp(x); }
  static std::vector<double> kinks() { return {0.0}; }  // where f' jumps
  double alpha;
};
GRADSIM_ACTIVATION("elu", Elu)

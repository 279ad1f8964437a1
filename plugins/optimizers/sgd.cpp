// sgd: stochastic gradient descent with momentum and weight decay, PyTorch's convention:
//   g' = g + weight_decay w;  v = momentum v + g' (v = g' at the first step);  w -= lr v
// (nesterov: w -= lr (g' + momentum v)). Computed in float64 per element, stored in the format.
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Sgd final : public gradsim::Optimizer<T> {
 public:
  static constexpr const char* help = "w -= lr v, v = momentum v + g + weight_decay w (PyTorch's SGD)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("momentum", 0.0, 0.0, 1.0, "momentum coefficient (0: plain SGD)"),
            gradsim::ParamDecl::real("weight_decay", 0.0, 0.0, 1e3, "L2 penalty added to the gradient"),
            gradsim::ParamDecl::boolean("nesterov", false, "Nesterov momentum")};
  }
  explicit Sgd(const gradsim::Params& p)
      : momentum_(p.number("momentum")), decay_(p.number("weight_decay")), nesterov_(p.flag("nesterov")) {}

  std::size_t state_slots() const override { return momentum_ > 0 ? 1 : 0; }

  void step(gradsim::Matrix<T>& w, const gradsim::Matrix<T>& g, gradsim::Matrix<T>* state,
            const gradsim::StepInfo& info) const override {
    using gradsim::to_double;
    for (Eigen::Index i = 0; i < w.size(); ++i) {
      double d = to_double(g(i)) + decay_ * to_double(w(i));
      if (momentum_ > 0) {
        T& v = state[0](i);
        const double vn = info.t == 1 ? d : momentum_ * to_double(v) + d;
        v = T(vn);
        d = nesterov_ ? d + momentum_ * to_double(v) : to_double(v);
      }
      w(i) = T(to_double(w(i)) - info.lr * d);
    }
  }

 private:
  double momentum_, decay_;
  bool nesterov_;
};

}  // namespace

GRADSIM_OPTIMIZER("sgd", Sgd)

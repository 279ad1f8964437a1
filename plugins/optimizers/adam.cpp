// adam: Kingma & Ba 2015 with PyTorch's conventions (bias-corrected moments, eps outside the
// square root); weight_decay is L2 added to the gradient (Adam) or, with decoupled, applied to
// the weight directly (AdamW, Loshchilov & Hutter 2019):
//   g' = g (+ weight_decay w);  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2
//   w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (AdamW: w -= lr weight_decay w first)
// Computed in float64 per element; m, v and w are stored in the format (so in float16, v
// underflows where g^2 < 6e-8, as it does for a real float16 Adam).
#include <cmath>
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Adam final : public gradsim::Optimizer<T> {
 public:
  static constexpr const char* help = "Adam (bias-corrected moments), L2 or decoupled (AdamW) weight decay";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("beta1", 0.9, 0.0, 0.999999, "decay of the first moment"),
            gradsim::ParamDecl::real("beta2", 0.999, 0.0, 0.999999, "decay of the second moment"),
            gradsim::ParamDecl::real("eps", 1e-8, 0.0, 1.0, "added to the root of the second moment"),
            gradsim::ParamDecl::real("weight_decay", 0.0, 0.0, 1e3, "weight decay coefficient"),
            gradsim::ParamDecl::boolean("decoupled", false, "AdamW: decay the weight, not the gradient")};
  }
  explicit Adam(const gradsim::Params& p)
      : b1_(p.number("beta1")), b2_(p.number("beta2")), eps_(p.number("eps")), decay_(p.number("weight_decay")),
        decoupled_(p.flag("decoupled")) {}

  std::size_t state_slots() const override { return 2; }

  void step(gradsim::Matrix<T>& w, const gradsim::Matrix<T>& g, gradsim::Matrix<T>* state,
            const gradsim::StepInfo& info) const override {
    using gradsim::to_double;
    const double c1 = 1 - std::pow(b1_, double(info.t)), c2 = 1 - std::pow(b2_, double(info.t));
    auto& m = state[0];
    auto& v = state[1];
    for (Eigen::Index i = 0; i < w.size(); ++i) {
      double wi = to_double(w(i)), gi = to_double(g(i));
      if (decoupled_) wi -= info.lr * decay_ * wi;
      else gi += decay_ * wi;
      const T mi = T(b1_ * to_double(m(i)) + (1 - b1_) * gi), vi = T(b2_ * to_double(v(i)) + (1 - b2_) * gi * gi);
      m(i) = mi, v(i) = vi;
      w(i) = T(wi - info.lr * (to_double(mi) / c1) / (std::sqrt(to_double(vi) / c2) + eps_));
    }
  }

 private:
  double b1_, b2_, eps_, decay_;
  bool decoupled_;
};

}  // namespace

GRADSIM_OPTIMIZER("adam", Adam)

// residual: a shortcut around every `span` blocks, y = x + alpha * F(x) (He et al. 2016).
// The variance of a plain residual stack grows by (1 + alpha^2 * c) per branch, so without
// normalisation alpha = 1 explodes with depth; alpha = 1/sqrt(branches) keeps it bounded.
// Pre-norm and post-norm arrangements: add a norm with placement residual_pre / residual_post.
#include <cmath>
#include <gradsim/gradsim.hpp>

namespace {

// P(x) = x W: the shortcut's projection where the width changes.
template <class T>
class Projection final : public gradsim::Layer<T> {
 public:
  Projection(std::size_t fan_in, std::size_t fan_out) : fan_in_(fan_in), fan_out_(fan_out) {}
  std::vector<gradsim::WeightDecl> weights() const override {
    return {{"P", fan_in_, fan_out_, gradsim::WeightRole::weight, fan_in_, fan_out_}};
  }
  void forward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, gradsim::Matrix<T>& y) const override {
    gradsim::matmul(x, ctx.w(0), y);
  }
  void backward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, const gradsim::Matrix<T>&,
                const gradsim::Matrix<T>& dy, gradsim::Matrix<T>& dx) const override {
    gradsim::matmul(x, dy, ctx.dw(0), {.transpose_a = true, .accumulate = true});
    gradsim::matmul(dy, ctx.w(0), dx, {.transpose_b = true});
  }
  bool tangent(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>&, const gradsim::Matrix<T>&,
               const gradsim::Matrix<T>& dx, gradsim::Matrix<T>& dy) const override {
    gradsim::matmul(dx, ctx.w(0), dy);
    return true;
  }

 private:
  std::size_t fan_in_, fan_out_;
};

template <class T>
class Residual final : public gradsim::Mitigation<T> {
 public:
  static constexpr const char* help = "shortcut y = P(x) + alpha * F(x) around every `span` blocks";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::integer("span", 1, 1, 1000000, "blocks inside each residual branch F"),
            gradsim::ParamDecl::real("alpha", 1.0, 0.0, 1e6, "branch multiplier"),
            gradsim::ParamDecl::choice("alpha_rule", "constant", {"constant", "inv_sqrt_branches"},
                                       "inv_sqrt_branches: alpha / sqrt(number of branches)")};
  }
  explicit Residual(const gradsim::Params& p)
      : span_(std::size_t(p.integer("span"))), alpha_(p.number("alpha")),
        scaled_(p.text("alpha_rule") == "inv_sqrt_branches") {}

  std::optional<gradsim::Shortcut> shortcut(std::size_t depth) const override {
    const double branches = double((depth + span_ - 1) / span_);
    return gradsim::Shortcut{span_, scaled_ ? alpha_ / std::sqrt(branches) : alpha_};
  }
  std::unique_ptr<gradsim::Layer<T>> projection(std::size_t fan_in, std::size_t fan_out) const override {
    return std::make_unique<Projection<T>>(fan_in, fan_out);
  }

 private:
  std::size_t span_;
  double alpha_;
  bool scaled_;
};

}  // namespace

GRADSIM_MITIGATION("residual", Residual)

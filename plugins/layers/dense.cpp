// dense: the fully connected layer y = x W + b.
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Dense final : public gradsim::Layer<T> {
 public:
  static constexpr const char* help = "fully connected: y = x W + b (W: fan_in x fan_out)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::boolean("bias", true, "add a bias vector b")};
  }

  explicit Dense(const gradsim::LayerArgs& a) : fan_in_(a.fan_in), fan_out_(a.fan_out), bias_(a.params.flag("bias")) {}

  std::vector<gradsim::WeightDecl> weights() const override {
    std::vector<gradsim::WeightDecl> w{{"W", fan_in_, fan_out_, gradsim::WeightRole::weight, fan_in_, fan_out_}};
    if (bias_) w.push_back({"b", 1, fan_out_, gradsim::WeightRole::bias, fan_in_, fan_out_});
    return w;
  }

  void forward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, gradsim::Matrix<T>& y) const override {
    gradsim::matmul(x, ctx.w(0), y);
    if (bias_) y.rowwise() += ctx.w(1).row(0);
  }

  // y = x W + b  =>  dW += x^T dy,  db += sum over rows of dy,  dx = dy W^T.
  void backward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, const gradsim::Matrix<T>&,
                const gradsim::Matrix<T>& dy, gradsim::Matrix<T>& dx) const override {
    gradsim::matmul(x, dy, ctx.dw(0), {.transpose_a = true, .accumulate = true});
    if (bias_) gradsim::add_column_sums(dy, ctx.dw(1));
    gradsim::matmul(dy, ctx.w(0), dx, {.transpose_b = true});
  }

  // dy = dx W.
  bool tangent(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>&, const gradsim::Matrix<T>&,
               const gradsim::Matrix<T>& dx, gradsim::Matrix<T>& dy) const override {
    gradsim::matmul(dx, ctx.w(0), dy);
    return true;
  }

 private:
  std::size_t fan_in_, fan_out_;
  bool bias_;
};

}  // namespace

GRADSIM_LAYER("dense", Dense)

// rnn: the plain (Elman) recurrent cell h_t = phi(h_{t-1} W + x_t U + b), phi the spec's
// activation (network.activation).
#include <gradsim/gradsim.hpp>

namespace {

using gradsim::Matrix;

template <class T>
class Rnn final : public gradsim::Cell<T> {
 public:
  static constexpr const char* help = "Elman cell: h_t = phi(h_{t-1} W + x_t U + b), phi = network.activation";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::boolean("bias", true, "add a bias vector b")};
  }
  explicit Rnn(const gradsim::CellArgs<T>& a)
      : input_(a.input), hidden_(a.hidden), bias_(a.params.flag("bias")), act_(a.activation) {
    if (!act_) throw std::invalid_argument("the rnn cell needs an activation (network.activation)");
  }
  std::size_t state_cols() const override { return hidden_; }
  std::vector<gradsim::WeightDecl> weights() const override {
    std::vector<gradsim::WeightDecl> w{{"W", hidden_, hidden_, gradsim::WeightRole::weight, hidden_, hidden_},
                                       {"U", input_, hidden_, gradsim::WeightRole::weight, input_, hidden_}};
    if (bias_) w.push_back({"b", 1, hidden_, gradsim::WeightRole::bias, hidden_, hidden_});
    return w;
  }
  void forward(gradsim::Ctx<T>& ctx, const Matrix<T>& h, const Matrix<T>& x, Matrix<T>& s) const override {
    Matrix<T>& z = ctx.saved(0);  // the pre-activation
    gradsim::matmul(h, ctx.w(0), z);
    gradsim::matmul(x, ctx.w(1), z, {.accumulate = true});
    if (bias_) z.rowwise() += ctx.w(2).row(0);
    act_->forward(z, s);
  }
  // dz = phi'(z) ds; dW += h^T dz, dU += x^T dz, db += sum dz; dh = dz W^T, dx = dz U^T.
  void backward(gradsim::Ctx<T>& ctx, const Matrix<T>& h, const Matrix<T>& x, const Matrix<T>& s, const Matrix<T>& ds,
                Matrix<T>& dh, Matrix<T>& dx) const override {
    Matrix<T> dz;
    act_->backward(ctx.saved(0), s, ds, dz);
    gradsim::matmul(h, dz, ctx.dw(0), {.transpose_a = true, .accumulate = true});
    gradsim::matmul(x, dz, ctx.dw(1), {.transpose_a = true, .accumulate = true});
    if (bias_) gradsim::add_column_sums(dz, ctx.dw(2));
    gradsim::matmul(dz, ctx.w(0), dh, {.transpose_b = true});
    gradsim::matmul(dz, ctx.w(1), dx, {.transpose_b = true});
  }

 private:
  std::size_t input_, hidden_;
  bool bias_;
  const gradsim::Activation<T>* act_;
};

}  // namespace

GRADSIM_CELL("rnn", Rnn)

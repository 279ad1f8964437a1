// lstm: long short-term memory (Hochreiter & Schmidhuber 1997; gate order i, f, g, o as in
// PyTorch). The state is [h, c]:
//   [i f g o] = x U + h W + b (+ forget_bias on f),  i, f, o = sigmoid, g = tanh
//   c' = f * c + i * g,  h' = o * tanh(c')
// W: hidden x 4 hidden, U: input x 4 hidden, b: 1 x 4 hidden.
#include "gates.hpp"

namespace {

using gradsim::Matrix;
using namespace gradsim_cells;

template <class T>
class Lstm final : public gradsim::Cell<T> {
 public:
  static constexpr const char* help = "long short-term memory; state [h, c]; forget_bias added to the forget gate";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("forget_bias", 1.0, -100, 100,
                                     "added to the forget gate's pre-activation (1: remember by default)")};
  }
  explicit Lstm(const gradsim::CellArgs<T>& a)
      : input_(a.input), hidden_(a.hidden), forget_bias_(a.params.number("forget_bias")) {}
  std::size_t state_cols() const override { return 2 * hidden_; }
  std::vector<gradsim::WeightDecl> weights() const override {
    const std::size_t H = hidden_;
    return {{"W", H, 4 * H, gradsim::WeightRole::weight, H, H},
            {"U", input_, 4 * H, gradsim::WeightRole::weight, input_, H},
            {"b", 1, 4 * H, gradsim::WeightRole::bias, H, H}};
  }
  void forward(gradsim::Ctx<T>& ctx, const Matrix<T>& s_prev, const Matrix<T>& x, Matrix<T>& s) const override {
    const auto H = Eigen::Index(hidden_);
    Matrix<T>& tc = ctx.saved(1);  // tanh(c')
    Matrix<T>& g = ctx.saved(0);   // the gates, after their nonlinearities
    gradsim::matmul(x, ctx.w(1), g);
    gradsim::matmul(Matrix<T>(s_prev.leftCols(H)), ctx.w(0), g, {.accumulate = true});
    g.rowwise() += ctx.w(2).row(0);
    g.middleCols(H, H).array() += T(forget_bias_);
    Matrix<T> ifo(g.rows(), 3 * H), gg = g.middleCols(2 * H, H);
    ifo << g.leftCols(2 * H), g.rightCols(H);
    sigmoid_inplace(ifo);
    tanh_inplace(gg);
    g.leftCols(2 * H) = ifo.leftCols(2 * H), g.rightCols(H) = ifo.rightCols(H), g.middleCols(2 * H, H) = gg;
    s.resize(g.rows(), 2 * H);
    s.rightCols(H) = g.middleCols(H, H).cwiseProduct(s_prev.rightCols(H)) + g.leftCols(H).cwiseProduct(gg);
    tc = s.rightCols(H);
    tanh_inplace(tc);
    s.leftCols(H) = g.rightCols(H).cwiseProduct(tc);
  }
  void backward(gradsim::Ctx<T>& ctx, const Matrix<T>& s_prev, const Matrix<T>& x, const Matrix<T>&,
                const Matrix<T>& ds, Matrix<T>& ds_prev, Matrix<T>& dx) const override {
    const auto H = Eigen::Index(hidden_);
    const Matrix<T>& g = ctx.saved(0);
    const Matrix<T>& tc = ctx.saved(1);
    const Matrix<T> i = g.leftCols(H), f = g.middleCols(H, H), gg = g.middleCols(2 * H, H), o = g.rightCols(H);
    const Matrix<T> dh = ds.leftCols(H);
    const Matrix<T> dc = ds.rightCols(H) + times_dtanh(Matrix<T>(dh.cwiseProduct(o)), tc);
    Matrix<T> d(ds.rows(), 4 * H);  // the gates' pre-activation gradients
    d.leftCols(H) = times_dsigmoid(Matrix<T>(dc.cwiseProduct(gg)), i);
    d.middleCols(H, H) = times_dsigmoid(Matrix<T>(dc.cwiseProduct(s_prev.rightCols(H))), f);
    d.middleCols(2 * H, H) = times_dtanh(Matrix<T>(dc.cwiseProduct(i)), gg);
    d.rightCols(H) = times_dsigmoid(Matrix<T>(dh.cwiseProduct(tc)), o);
    gradsim::matmul(x, d, ctx.dw(1), {.transpose_a = true, .accumulate = true});
    gradsim::matmul(Matrix<T>(s_prev.leftCols(H)), d, ctx.dw(0), {.transpose_a = true, .accumulate = true});
    gradsim::add_column_sums(d, ctx.dw(2));
    gradsim::matmul(d, ctx.w(1), dx, {.transpose_b = true});
    Matrix<T> dhp;
    gradsim::matmul(d, ctx.w(0), dhp, {.transpose_b = true});
    ds_prev.resize(ds.rows(), 2 * H);
    ds_prev.leftCols(H) = dhp;
    ds_prev.rightCols(H) = dc.cwiseProduct(f);
  }

 private:
  std::size_t input_, hidden_;
  double forget_bias_;
};

}  // namespace

GRADSIM_CELL("lstm", Lstm)

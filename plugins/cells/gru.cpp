// gru: the gated recurrent unit (Cho et al. 2014, PyTorch's gate order r, z, n):
//   r = sigmoid(x U_r + h W_r + b_r),  z = sigmoid(x U_z + h W_z + b_z)
//   n = tanh(x U_n + b_n + r * (h W_n)),  h' = (1 - z) * n + z * h
// W = [W_r W_z W_n] (hidden x 3 hidden), U = [U_r U_z U_n] (input x 3 hidden), b (1 x 3 hidden).
#include "gates.hpp"

namespace {

using gradsim::Matrix;
using namespace gradsim_cells;

template <class T>
class Gru final : public gradsim::Cell<T> {
 public:
  static constexpr const char* help = "gated recurrent unit: update z, reset r, h' = (1 - z) n + z h";
  explicit Gru(const gradsim::CellArgs<T>& a) : input_(a.input), hidden_(a.hidden) {}
  std::size_t state_cols() const override { return hidden_; }
  std::vector<gradsim::WeightDecl> weights() const override {
    const std::size_t H = hidden_;
    return {{"W", H, 3 * H, gradsim::WeightRole::weight, H, H},
            {"U", input_, 3 * H, gradsim::WeightRole::weight, input_, H},
            {"b", 1, 3 * H, gradsim::WeightRole::bias, H, H}};
  }
  void forward(gradsim::Ctx<T>& ctx, const Matrix<T>& h, const Matrix<T>& x, Matrix<T>& s) const override {
    const auto H = Eigen::Index(hidden_);
    Matrix<T>& hw = ctx.saved(2);  // h W (all three)
    Matrix<T>& n = ctx.saved(1);
    Matrix<T>& g = ctx.saved(0);   // x U + b, then r and z in the first 2H columns
    gradsim::matmul(x, ctx.w(1), g);
    g.rowwise() += ctx.w(2).row(0);
    gradsim::matmul(h, ctx.w(0), hw);
    g.leftCols(2 * H) += hw.leftCols(2 * H);
    Matrix<T> rz = g.leftCols(2 * H);
    sigmoid_inplace(rz);
    g.leftCols(2 * H) = rz;
    n = g.rightCols(H) + g.leftCols(H).cwiseProduct(hw.rightCols(H));
    tanh_inplace(n);
    const auto z = g.middleCols(H, H);
    s = n + z.cwiseProduct(h - n);
  }
  void backward(gradsim::Ctx<T>& ctx, const Matrix<T>& h, const Matrix<T>& x, const Matrix<T>&, const Matrix<T>& ds,
                Matrix<T>& dh, Matrix<T>& dx) const override {
    const auto H = Eigen::Index(hidden_);
    const Matrix<T>& g = ctx.saved(0);
    const Matrix<T>& n = ctx.saved(1);
    const Matrix<T>& hw = ctx.saved(2);
    const Matrix<T> r = g.leftCols(H), z = g.middleCols(H, H);
    const Matrix<T> dn = times_dtanh(Matrix<T>(ds.cwiseProduct((T(1) - z.array()).matrix())), n);  // d(n's pre-activation)
    Matrix<T> gx(ds.rows(), 3 * H), gh(ds.rows(), 3 * H);  // gradients of x U + b and of h W
    gx.leftCols(H) = times_dsigmoid(Matrix<T>(dn.cwiseProduct(hw.rightCols(H))), r);
    gx.middleCols(H, H) = times_dsigmoid(Matrix<T>(ds.cwiseProduct(h - n)), z);
    gx.rightCols(H) = dn;
    gh.leftCols(2 * H) = gx.leftCols(2 * H);
    gh.rightCols(H) = dn.cwiseProduct(r);
    gradsim::matmul(x, gx, ctx.dw(1), {.transpose_a = true, .accumulate = true});
    gradsim::add_column_sums(gx, ctx.dw(2));
    gradsim::matmul(h, gh, ctx.dw(0), {.transpose_a = true, .accumulate = true});
    gradsim::matmul(gx, ctx.w(1), dx, {.transpose_b = true});
    gradsim::matmul(gh, ctx.w(0), dh, {.transpose_b = true});
    dh += ds.cwiseProduct(z);
  }

 private:
  std::size_t input_, hidden_;
};

}  // namespace

GRADSIM_CELL("gru", Gru)

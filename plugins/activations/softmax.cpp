// softmax over the features of each row: a_j = e^{h_j} / sum_k e^{h_k}. Not elementwise: its
// Jacobian da_j/dh_k = a_j (delta_jk - a_k) couples the whole row, so
//   dh_k = sum_j da_j a_j (delta_jk - a_k) = a_k (da_k - sum_j da_j a_j).
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Softmax final : public gradsim::Activation<T> {
 public:
  static constexpr const char* help = "softmax over the features of each row (full Jacobian in backward)";
  explicit Softmax(const gradsim::Params&) {}

  void forward(const gradsim::Matrix<T>& h, gradsim::Matrix<T>& a) const override {
    // Subtracting the row maximum changes nothing mathematically and keeps e^h finite.
    a = (h.colwise() - h.rowwise().maxCoeff()).unaryExpr([](T x) { return gradsim::fn::exp(x); });
    a.array().colwise() /= a.rowwise().sum().array();
  }
  void backward(const gradsim::Matrix<T>&, const gradsim::Matrix<T>& a, const gradsim::Matrix<T>& da,
                gradsim::Matrix<T>& dh) const override {
    const gradsim::Matrix<T> dot = da.cwiseProduct(a).rowwise().sum();  // sum_j da_j a_j, per row
    dh = a.cwiseProduct(da - dot.replicate(1, da.cols()));
  }
  // The Jacobian diag(a) - a a^T is symmetric: forward mode is the same map.
  bool tangent(const gradsim::Matrix<T>& h, const gradsim::Matrix<T>& a, const gradsim::Matrix<T>& dh,
               gradsim::Matrix<T>& da) const override {
    backward(h, a, dh, da);
    return true;
  }
};

}  // namespace

GRADSIM_ACTIVATION_TEMPLATE("softmax", Softmax)

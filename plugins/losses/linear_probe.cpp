// linear_probe: L = <V, y> = sum_ij V_ij y_ij with V_ij ~ N(0, 1/(batch width)).
// dL/dy = V whatever y is, and E ||V||_F^2 = 1: the gradient entering the network has unit
// expected norm for every output size, so depth effects are not mixed with loss effects.
#include <cmath>
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class LinearProbe final : public gradsim::Loss<T> {
 public:
  static constexpr const char* help = "L = <V, y>, V ~ N(0, 1/(batch*width)): dL/dy has unit expected norm";
  explicit LinearProbe(const gradsim::Params&) {}

  void setup(std::size_t batch, std::size_t width, gradsim::Rng& rng) override {
    V_.resize(batch, width);
    rng.fill_normal(V_, 1 / std::sqrt(double(batch * width)));
  }
  T forward(const gradsim::Matrix<T>& y) const override { return V_.cwiseProduct(y).sum(); }
  void backward(const gradsim::Matrix<T>&, gradsim::Matrix<T>& dy) const override { dy = V_; }

 private:
  gradsim::Matrix<T> V_;
};

}  // namespace

GRADSIM_LOSS("linear_probe", LinearProbe)

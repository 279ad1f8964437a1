// mse: mean squared error against random targets, L = 1/(2B) sum_ij (y_ij - t_ij)^2.
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Mse final : public gradsim::Loss<T> {
 public:
  static constexpr const char* help = "L = 1/(2 batch) ||y - t||^2, targets t ~ N(0, target_std^2)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("target_std", 1.0, 0.0, 1e6, "standard deviation of targets")};
  }
  explicit Mse(const gradsim::Params& p) : target_std_(p.number("target_std")) {}

  void setup(std::size_t batch, std::size_t width, gradsim::Rng& rng) override {
    t_.resize(batch, width);
    rng.fill_normal(t_, target_std_);
  }
  T forward(const gradsim::Matrix<T>& y) const override {
    return (y - t_).squaredNorm() / T(2 * y.rows());
  }
  // dL/dy = (y - t) / B.
  void backward(const gradsim::Matrix<T>& y, gradsim::Matrix<T>& dy) const override {
    dy = (y - t_) / T(y.rows());
  }

 private:
  double target_std_;
  gradsim::Matrix<T> t_;
};

}  // namespace

GRADSIM_LOSS("mse", Mse)

// A loss: Huber loss against random targets, L = 1/B sum_ij h(y_ij - t_ij) with
// h(r) = r^2 / 2 for |r| <= delta, delta (|r| - delta / 2) beyond: the gradient entering the
// network is bounded by delta / B per element, however large the outputs.
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Huber final : public gradsim::Loss<T> {
 public:
  static constexpr const char* help = "Huber loss against N(0, 1) targets: dL/dy bounded by delta/batch (example plugin)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("delta", 1.0, 1e-9, 1e9, "where the quadratic part ends")};
  }
  explicit Huber(const gradsim::Params& p) : delta_(p.number("delta")) {}

  void setup(std::size_t batch, std::size_t width, gradsim::Rng& rng) override {
    t_.resize(Eigen::Index(batch), Eigen::Index(width));
    rng.fill_normal(t_);
  }
  T forward(const gradsim::Matrix<T>& y) const override {
    const T d(delta_);
    const gradsim::Matrix<T> r = (y - t_).cwiseAbs();
    return r.unaryExpr([d](T a) { return a <= d ? T(0.5) * a * a : d * (a - T(0.5) * d); }).sum() / T(double(y.rows()));
  }
  // dL/dy = clamp(y - t, -delta, delta) / B.
  void backward(const gradsim::Matrix<T>& y, gradsim::Matrix<T>& dy) const override {
    dy = (y - t_).cwiseMax(T(-delta_)).cwiseMin(T(delta_)) / T(double(y.rows()));
  }

 private:
  double delta_;
  gradsim::Matrix<T> t_;
};

}  // namespace

GRADSIM_LOSS("huber", Huber)

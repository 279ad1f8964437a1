// gain: y = g x, no weights. The textbook chain in which every layer scales the gradient by
// exactly g: dL/dx = g dL/dy.
#include <stdexcept>
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Gain final : public gradsim::Layer<T> {
 public:
  static constexpr const char* help = "y = g * x (keeps the width; no weights)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("g", 10.0, -1e30, 1e30, "the factor")};
  }
  explicit Gain(const gradsim::LayerArgs& a) : g_(a.params.number("g")) {
    if (a.fan_in != a.fan_out)
      throw std::invalid_argument("gain layer keeps the width: set network.input_width equal to network.width (got " +
                                  std::to_string(a.fan_in) + " and " + std::to_string(a.fan_out) + ")");
  }
  void forward(gradsim::Ctx<T>&, const gradsim::Matrix<T>& x, gradsim::Matrix<T>& y) const override { y = T(g_) * x; }
  void backward(gradsim::Ctx<T>&, const gradsim::Matrix<T>&, const gradsim::Matrix<T>&, const gradsim::Matrix<T>& dy,
                gradsim::Matrix<T>& dx) const override {
    dx = T(g_) * dy;
  }
  bool tangent(gradsim::Ctx<T>&, const gradsim::Matrix<T>&, const gradsim::Matrix<T>&, const gradsim::Matrix<T>& dx,
               gradsim::Matrix<T>& dy) const override {
    dy = T(g_) * dx;
    return true;
  }

 private:
  double g_;
};

}  // namespace

GRADSIM_LAYER("gain", Gain)

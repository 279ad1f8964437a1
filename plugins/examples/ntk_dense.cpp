// A layer in the NTK parametrisation (Jacot et al. 2018): y = sigma_w / sqrt(fan_in) * x W +
// sigma_b * b, with W and b drawn N(0, 1) by the layer itself, whatever initialiser the spec
// names. Same forward statistics as dense with gaussian(gain = sigma_w) at initialisation;
// different gradients (dL/dW is scaled by sigma_w / sqrt(fan_in)).
#include <cmath>
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class NtkDense final : public gradsim::Layer<T> {
 public:
  static constexpr const char* help = "NTK parametrisation: y = sigma_w/sqrt(fan_in) x W + sigma_b b, W, b ~ N(0, 1) (example plugin)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("sigma_w", 1.0, 0.0, 1e6, "weight multiplier"),
            gradsim::ParamDecl::real("sigma_b", 0.0, 0.0, 1e6, "bias multiplier")};
  }
  explicit NtkDense(const gradsim::LayerArgs& a)
      : in_(a.fan_in), out_(a.fan_out), scale_(a.params.number("sigma_w") / std::sqrt(double(a.fan_in))),
        bias_(a.params.number("sigma_b")) {}

  // Both drawn by init_weight below (WeightInit::layer), from a stream the engine gives.
  std::vector<gradsim::WeightDecl> weights() const override {
    using gradsim::WeightRole, gradsim::WeightInit;
    return {{"W", in_, out_, WeightRole::weight, in_, out_, WeightInit::layer},
            {"b", 1, out_, WeightRole::bias, in_, out_, WeightInit::layer}};
  }
  void init_weight(std::size_t, gradsim::Matrix<double>& value, gradsim::Rng& rng) const override {
    rng.fill_normal(value, 1.0);
  }

  void forward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, gradsim::Matrix<T>& y) const override {
    gradsim::matmul(x, ctx.w(0), y);
    y *= T(scale_);
    y.rowwise() += T(bias_) * ctx.w(1).row(0);
  }
  // y = s x W + c b  =>  dW += s x^T dy,  db += c sum_rows dy,  dx = s dy W^T.
  void backward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, const gradsim::Matrix<T>&,
                const gradsim::Matrix<T>& dy, gradsim::Matrix<T>& dx) const override {
    const gradsim::Matrix<T> sdy = T(scale_) * dy;
    gradsim::matmul(x, sdy, ctx.dw(0), {.transpose_a = true, .accumulate = true});
    ctx.dw(1) += T(bias_) * dy.colwise().sum();
    gradsim::matmul(sdy, ctx.w(0), dx, {.transpose_b = true});
  }
  // Optional forward mode (Jacobian spectra of wide networks): dy = s dx W.
  bool tangent(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>&, const gradsim::Matrix<T>&, const gradsim::Matrix<T>& dx,
               gradsim::Matrix<T>& dy) const override {
    gradsim::matmul(dx, ctx.w(0), dy);
    dy *= T(scale_);
    return true;
  }

 private:
  std::size_t in_, out_;
  double scale_, bias_;
};

}  // namespace

GRADSIM_LAYER("ntk_dense", NtkDense)

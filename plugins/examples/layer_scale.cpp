// A mitigation: LayerScale (Touvron et al. 2021, CaiT). It inserts y = x * s (per feature) at
// the end of every residual branch (or wherever `placement` says), with s a learnable vector
// that starts at `init`, e.g. 1e-4: each branch then starts close to the identity shortcut,
// which keeps very deep residual networks trainable.
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Scale final : public gradsim::Layer<T> {
 public:
  Scale(std::size_t width, double init) : width_(width), init_(init) {}
  std::vector<gradsim::WeightDecl> weights() const override {
    return {{"s", 1, width_, gradsim::WeightRole::other, width_, width_, gradsim::WeightInit::constant, init_}};
  }
  void forward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, gradsim::Matrix<T>& y) const override {
    y = x.array().rowwise() * ctx.w(0).row(0).array();
  }
  // y_ij = x_ij s_j  =>  ds_j += sum_i dy_ij x_ij,  dx_ij = dy_ij s_j.
  void backward(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>& x, const gradsim::Matrix<T>&,
                const gradsim::Matrix<T>& dy, gradsim::Matrix<T>& dx) const override {
    ctx.dw(0) += dy.cwiseProduct(x).colwise().sum();
    dx = dy.array().rowwise() * ctx.w(0).row(0).array();
  }
  // Optional forward mode (Jacobian spectra of wide networks): dy_ij = dx_ij s_j.
  bool tangent(gradsim::Ctx<T>& ctx, const gradsim::Matrix<T>&, const gradsim::Matrix<T>&, const gradsim::Matrix<T>& dx,
               gradsim::Matrix<T>& dy) const override {
    dy = dx.array().rowwise() * ctx.w(0).row(0).array();
    return true;
  }

 private:
  std::size_t width_;
  double init_;
};

template <class T>
class LayerScale final : public gradsim::Mitigation<T> {
 public:
  static constexpr const char* help = "learnable per-feature scale s (starting at init) at the end of each block (example plugin)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("init", 1e-4, 0.0, 1e6, "the scale's first value"),
            gradsim::ParamDecl::choice("placement", "post_activation", {"post_activation", "pre_activation"},
                                       "where in the block")};
  }
  explicit LayerScale(const gradsim::Params& p)
      : init_(p.number("init")),
        site_(p.text("placement") == "pre_activation" ? gradsim::Site::pre_activation : gradsim::Site::post_activation) {}
  std::unique_ptr<gradsim::Layer<T>> insert(gradsim::Site site, std::size_t, std::size_t width, std::size_t) const override {
    return site == site_ ? std::make_unique<Scale<T>>(width, init_) : nullptr;
  }

 private:
  double init_;
  gradsim::Site site_;
};

}  // namespace

GRADSIM_MITIGATION("layer_scale", LayerScale)

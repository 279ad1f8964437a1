// Normalisation layers shared by batch_norm, layer_norm and rms_norm, and the mitigation
// that inserts one at a chosen site of every block.
//
// Over a group of n values (a feature's column over the batch for batch norm, a row's
// features for layer and RMS norm):
//   layer/batch:  xhat = (x - mean) / sqrt(var + eps)       rms:  xhat = x / sqrt(mean(x^2) + eps)
//   y = gamma * xhat + beta   (gamma, beta per feature; beta not for rms; both only if affine)
// and backward, with dxhat = gamma * dy and means over the same group:
//   layer/batch:  dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
//   rms:          dx = (dxhat - xhat * mean(dxhat * xhat)) / sqrt(mean(x^2) + eps)
// Statistics are computed in the simulated format T, like the rest of the pass.
#pragma once

#include <gradsim/gradsim.hpp>

namespace gradsim_plugins {

enum class NormKind { batch, layer, rms };

template <class T, NormKind K>
class Norm final : public gradsim::Layer<T> {
  using M = gradsim::Matrix<T>;

 public:
  Norm(std::size_t width, bool affine, double eps) : width_(width), affine_(affine), eps_(eps) {}

  // gamma = 1 and beta = 0 to start, whatever the spec's initialiser.
  std::vector<gradsim::WeightDecl> weights() const override {
    if (!affine_) return {};
    using gradsim::WeightInit, gradsim::WeightRole;
    std::vector<gradsim::WeightDecl> w{{"gamma", 1, width_, WeightRole::other, width_, width_, WeightInit::constant, 1.0}};
    if (K != NormKind::rms) w.push_back({"beta", 1, width_, WeightRole::other, width_, width_, WeightInit::constant, 0.0});
    return w;
  }

  // Saved for backward: 0 = xhat (group-major), 1 = 1/sqrt(var + eps) per group.
  void forward(gradsim::Ctx<T>& ctx, const M& x, M& y) const override {
    // Work on groups as columns: batch norm's groups are x's columns, the others' its rows.
    const M xg = group_major(x);
    const Eigen::Index n = xg.rows();
    M centred = xg;
    if constexpr (K != NormKind::rms) centred.rowwise() -= xg.colwise().sum() / T(double(n));
    const M ms = centred.cwiseProduct(centred).colwise().sum() / T(double(n));  // var, or mean(x^2)
    M& inv = ctx.saved(1);
    M& xhat = ctx.saved(0);
    inv = ms.unaryExpr([this](T v) { return T(1) / gradsim::fn::sqrt(v + T(eps_)); });
    xhat = centred.array().rowwise() * inv.row(0).array();
    y = from_group_major(xhat);
    if (affine_) {
      y.array().rowwise() *= ctx.w(0).row(0).array();
      if (K != NormKind::rms) y.rowwise() += ctx.w(1).row(0);
    }
  }

  bool mixes_rows() const override { return K == NormKind::batch; }

  // With J0 = d xhat / dx (symmetric), dy/dx = diag(gamma) J0: backward is J0 (gamma dy),
  // forward mode gamma (J0 dx).
  void backward(gradsim::Ctx<T>& ctx, const M&, const M&, const M& dy, M& dx) const override {
    if (affine_) {
      const M xhat = from_group_major(ctx.saved(0));
      ctx.dw(0) += dy.cwiseProduct(xhat).colwise().sum();
      if (K != NormKind::rms) gradsim::add_column_sums(dy, ctx.dw(1));
    }
    M dxhat = dy;
    if (affine_) dxhat.array().rowwise() *= ctx.w(0).row(0).array();
    dx = j0(ctx, dxhat);
  }

  bool tangent(gradsim::Ctx<T>& ctx, const M&, const M&, const M& dx, M& dy) const override {
    dy = j0(ctx, dx);
    if (affine_) dy.array().rowwise() *= ctx.w(0).row(0).array();
    return true;
  }

 private:
  // J0 v = (v - mean(v) - xhat mean(v xhat)) / sqrt(var + eps) per group (rms: no mean(v)).
  M j0(gradsim::Ctx<T>& ctx, const M& v) const {
    const M& xhat_g = ctx.saved(0);
    const M& inv = ctx.saved(1);
    M g = group_major(v);
    const T n = T(double(g.rows()));
    const M proj = g.cwiseProduct(xhat_g).colwise().sum() / n;  // mean(v * xhat)
    if constexpr (K != NormKind::rms) g.rowwise() -= g.colwise().sum() / n;
    g -= (xhat_g.array().rowwise() * proj.row(0).array()).matrix();
    g.array().rowwise() *= inv.row(0).array();
    return from_group_major(g);
  }

  static M group_major(const M& x) { return K == NormKind::batch ? x : M(x.transpose()); }
  static M from_group_major(const M& g) { return K == NormKind::batch ? g : M(g.transpose()); }

  std::size_t width_;
  bool affine_;
  double eps_;
};

inline const std::vector<std::string> kPlacements = {"pre_activation", "post_activation", "residual_pre",
                                                     "residual_post"};

/// Inserts Norm<T, K> at the chosen site of every block.
template <class T, NormKind K>
class NormMitigation : public gradsim::Mitigation<T> {
 public:
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::choice("placement", "pre_activation", kPlacements,
                                       "before/after the activation; residual_pre: at the start of each "
                                       "residual branch (pre-norm); residual_post: after each merge (post-norm)"),
            gradsim::ParamDecl::boolean("affine", true, "learnable per-feature scale (and shift)"),
            gradsim::ParamDecl::real("eps", 1e-5, 0.0, 1.0, "added to the variance")};
  }
  explicit NormMitigation(const gradsim::Params& p)
      : affine_(p.flag("affine")), eps_(p.number("eps")) {
    const std::string& where = p.text("placement");
    site_ = where == "pre_activation"    ? gradsim::Site::pre_activation
            : where == "post_activation" ? gradsim::Site::post_activation
            : where == "residual_pre"    ? gradsim::Site::segment_in
                                         : gradsim::Site::segment_out;
  }
  std::unique_ptr<gradsim::Layer<T>> insert(gradsim::Site site, std::size_t, std::size_t width,
                                            std::size_t) const override {
    if (site != site_) return nullptr;
    return std::make_unique<Norm<T, K>>(width, affine_, eps_);
  }

 private:
  gradsim::Site site_;
  bool affine_;
  double eps_;
};

}  // namespace gradsim_plugins

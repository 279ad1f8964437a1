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
  Norm(std::size_t width, bool affine, double eps)
      : width_(width), affine_(affine), eps_(eps),
        gamma_(M::Ones(1, affine ? width : 0)), dgamma_(M::Zero(1, gamma_.cols())),
        beta_(M::Zero(1, affine && K != NormKind::rms ? width : 0)), dbeta_(beta_) {}

  void forward(const M& x, M& y) override {
    // Work on groups as columns: batch norm's groups are x's columns, the others' its rows.
    const M xg = group_major(x);
    const Eigen::Index n = xg.rows();
    M centred = xg;
    if constexpr (K != NormKind::rms) centred.rowwise() -= xg.colwise().sum() / T(double(n));
    const M ms = centred.cwiseProduct(centred).colwise().sum() / T(double(n));  // var, or mean(x^2)
    inv_ = ms.unaryExpr([this](T v) { return T(1) / gradsim::fn::sqrt(v + T(eps_)); });
    xhat_ = centred.array().rowwise() * inv_.row(0).array();
    y = from_group_major(xhat_);
    if (affine_) {
      y.array().rowwise() *= gamma_.row(0).array();
      if (beta_.cols()) y.rowwise() += beta_.row(0);
    }
  }

  void backward(const M& dy, M& dx) override {
    const M xhat = from_group_major(xhat_);
    if (affine_) {
      dgamma_ += dy.cwiseProduct(xhat).colwise().sum();
      if (beta_.cols()) dbeta_ += dy.colwise().sum();
    }
    M dxhat = dy;
    if (affine_) dxhat.array().rowwise() *= gamma_.row(0).array();
    M g = group_major(dxhat);
    const T n = T(double(g.rows()));
    const M proj = g.cwiseProduct(xhat_).colwise().sum() / n;  // mean(dxhat * xhat)
    if constexpr (K != NormKind::rms) g.rowwise() -= g.colwise().sum() / n;
    g -= (xhat_.array().rowwise() * proj.row(0).array()).matrix();
    g.array().rowwise() *= inv_.row(0).array();
    dx = from_group_major(g);
  }

  std::vector<gradsim::ParamRef<T>> params() override {
    std::vector<gradsim::ParamRef<T>> p;
    if (gamma_.cols()) p.push_back({"gamma", gradsim::ParamRole::fixed_init, width_, width_, &gamma_, &dgamma_});
    if (beta_.cols()) p.push_back({"beta", gradsim::ParamRole::fixed_init, width_, width_, &beta_, &dbeta_});
    return p;
  }

 private:
  static M group_major(const M& x) { return K == NormKind::batch ? x : M(x.transpose()); }
  static M from_group_major(const M& g) { return K == NormKind::batch ? g : M(g.transpose()); }

  std::size_t width_;
  bool affine_;
  double eps_;
  M gamma_, dgamma_, beta_, dbeta_;
  M xhat_, inv_;  // group-major normalised input, and 1/sqrt(var + eps) per group
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
                                            std::size_t) override {
    if (site != site_) return nullptr;
    return std::make_unique<Norm<T, K>>(width, affine_, eps_);
  }

 private:
  gradsim::Site site_;
  bool affine_;
  double eps_;
};

}  // namespace gradsim_plugins

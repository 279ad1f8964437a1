// orthogonal: W = gain * Q, Q with orthonormal columns (fan_in >= fan_out) or rows, from the
// QR decomposition of a Gaussian matrix with the signs of R's diagonal folded in, so that Q is
// uniformly (Haar) distributed (Saxe et al. 2014). Biases N(0, bias_std^2) (0 by default).
// For a square W and any vector v: ||v W|| = gain ||v|| exactly (up to rounding).
#include <gradsim/gradsim.hpp>

#include "gain.hpp"

class Orthogonal final : public gradsim::Initializer {
 public:
  static constexpr const char* help = "W = gain * Q, Q exactly orthogonal (QR of a Gaussian matrix), b ~ N(0, bias_std^2)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("gain", 1.0, 0.0, 1e6, "multiplies Q"), gradsim_plugins::Bias::decl()};
  }
  explicit Orthogonal(const gradsim::Params& p) : gain_(p.number("gain")), bias_(p) {}

  void fill(gradsim::WeightRole role, std::size_t, std::size_t, gradsim::Matrix<double>& value,
            gradsim::Rng& rng) const override {
    if (role == gradsim::WeightRole::bias) return bias_.fill(value, rng);
    const bool tall = value.rows() >= value.cols();
    Eigen::MatrixXd a(tall ? value.rows() : value.cols(), tall ? value.cols() : value.rows());
    rng.fill_normal(a);
    gradsim::orthonormalize(a);  // LAPACK in the gradsim library: seconds for 4096 x 4096
    value = gain_ * (tall ? a : Eigen::MatrixXd(a.transpose()));
  }

  // Orthonormal columns (fan_in >= fan_out) have entries of variance 1/fan_in; orthonormal
  // rows, 1/fan_out. The entries are not independent, but each has mean 0 and this variance.
  std::optional<gradsim::Variances> variances(std::size_t fan_in, std::size_t fan_out) const override {
    return gradsim::Variances{gain_ * gain_ * (fan_in >= fan_out ? 1.0 : double(fan_in) / double(fan_out)), bias_.variance()};
  }

 private:
  double gain_;
  gradsim_plugins::Bias bias_;
};
GRADSIM_INITIALIZER("orthogonal", Orthogonal)

// identity: W = gain * I (ones on the main diagonal of a rectangular W), b ~ N(0, bias_std^2)
// (0 by default). With linear activations and no bias every layer multiplies by exactly gain:
// the textbook deep linear chain.
#include <gradsim/gradsim.hpp>

#include "gain.hpp"

class Identity final : public gradsim::Initializer {
 public:
  static constexpr const char* help = "W = gain * I (rectangular: diagonal ones), b ~ N(0, bias_std^2)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("gain", 1.0, -1e6, 1e6, "the diagonal value"), gradsim_plugins::Bias::decl()};
  }
  explicit Identity(const gradsim::Params& p) : gain_(p.number("gain")), bias_(p) {}
  void fill(gradsim::WeightRole role, std::size_t, std::size_t, gradsim::Matrix<double>& value, gradsim::Rng& rng) const override {
    if (role == gradsim::WeightRole::bias) return bias_.fill(value, rng);
    value = gain_ * Eigen::MatrixXd::Identity(value.rows(), value.cols());
  }

  // Not random: no variance to declare, and no mean-field theory applies.
  std::optional<gradsim::Variances> variances(std::size_t, std::size_t) const override { return std::nullopt; }

 private:
  double gain_;
  gradsim_plugins::Bias bias_;
};
GRADSIM_INITIALIZER("identity", Identity)

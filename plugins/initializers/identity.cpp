// identity: W = gain * I (ones on the main diagonal of a rectangular W), b = 0. With linear
// activations every layer multiplies by exactly gain: the textbook deep linear chain.
#include <gradsim/gradsim.hpp>

class Identity final : public gradsim::Initializer {
 public:
  static constexpr const char* help = "W = gain * I (rectangular: diagonal ones), b = 0";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("gain", 1.0, -1e6, 1e6, "the diagonal value")};
  }
  explicit Identity(const gradsim::Params& p) : gain_(p.number("gain")) {}
  void fill(gradsim::WeightRole role, std::size_t, std::size_t, gradsim::Matrix<double>& value, gradsim::Rng&) const override {
    if (role == gradsim::WeightRole::bias) {
      value.setZero();
      return;
    }
    value = gain_ * Eigen::MatrixXd::Identity(value.rows(), value.cols());
  }

  // Not random: no variance to declare, and no mean-field theory applies.
  std::optional<gradsim::Variances> variances(std::size_t, std::size_t) const override { return std::nullopt; }

 private:
  double gain_;
};
GRADSIM_INITIALIZER("identity", Identity)

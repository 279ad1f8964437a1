// gaussian: W ~ N(0, gain^2 / fan_in), b ~ N(0, bias_std^2).
#include <cmath>
#include <gradsim/gradsim.hpp>

class Gaussian final : public gradsim::Initializer {
 public:
  static constexpr const char* help = "W ~ N(0, gain^2/fan_in), b ~ N(0, bias_std^2)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("gain", 1.0, 0.0, 1e6, "weight std = gain / sqrt(fan_in)"),
            gradsim::ParamDecl::real("bias_std", 0.0, 0.0, 1e6, "standard deviation of biases")};
  }
  explicit Gaussian(const gradsim::Params& p)
      : gain_(p.number("gain")), bias_std_(p.number("bias_std")) {}

  void fill(gradsim::WeightRole role, std::size_t fan_in, std::size_t fan_out, gradsim::Matrix<double>& value,
            gradsim::Rng& rng) const override {
    rng.fill_normal(value, *normal_std(role, fan_in, fan_out));
  }

  std::optional<double> normal_std(gradsim::WeightRole role, std::size_t fan_in, std::size_t) const override {
    return role == gradsim::WeightRole::bias ? bias_std_ : gain_ / std::sqrt(double(fan_in));
  }

  std::optional<gradsim::Variances> variances(std::size_t, std::size_t) const override {
    return gradsim::Variances{gain_ * gain_, bias_std_ * bias_std_};
  }

 private:
  double gain_, bias_std_;
};
GRADSIM_INITIALIZER("gaussian", Gaussian)

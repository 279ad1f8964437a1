// he (kaiming): Var W = gain^2 / fan, fan = fan_in (keeps forward variance) or fan_out (keeps
// backward variance), gain = the nonlinearity's gain (sqrt 2 for relu); normal or uniform.
#include <cmath>
#include <gradsim/gradsim.hpp>

#include "gain.hpp"

class He final : public gradsim::Initializer {
 public:
  static constexpr const char* help = "W with variance gain(nonlinearity)^2 / fan (He et al. 2015), b ~ N(0, bias_std^2)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::choice("mode", "fan_in", {"fan_in", "fan_out"}, "fan_in keeps forward, fan_out backward variance"),
            gradsim::ParamDecl::choice("distribution", "normal", {"normal", "uniform"}, "shape of the distribution"),
            gradsim::ParamDecl::choice("nonlinearity", "relu", gradsim_plugins::kNonlinearities, "whose gain to use"),
            gradsim::ParamDecl::real("slope", 0.01, 0.0, 1.0, "negative slope, for nonlinearity leaky_relu"),
            gradsim_plugins::Bias::decl()};
  }
  explicit He(const gradsim::Params& p)
      : fan_out_(p.text("mode") == "fan_out"), uniform_(p.text("distribution") == "uniform"),
        gain_(gradsim_plugins::nonlinearity_gain(p.text("nonlinearity"), p.number("slope"))), bias_(p) {}

  void fill(gradsim::WeightRole role, std::size_t fan_in, std::size_t fan_out, gradsim::Matrix<double>& value,
            gradsim::Rng& rng) const override {
    if (role == gradsim::WeightRole::bias) return bias_.fill(value, rng);
    const double std = std_of(fan_in, fan_out);
    if (!uniform_) return rng.fill_normal(value, std);
    const double bound = std * std::sqrt(3.0);  // U(-b, b) has variance b^2 / 3
    rng.fill_uniform(value, -bound, bound);
  }

  std::optional<double> normal_std(gradsim::WeightRole role, std::size_t fan_in, std::size_t fan_out) const override {
    if (role == gradsim::WeightRole::bias) return bias_.normal_std();
    if (uniform_) return std::nullopt;
    return std_of(fan_in, fan_out);
  }

  // Var W = gain^2 / fan = sigma_w2 / fan_in.
  std::optional<gradsim::Variances> variances(std::size_t fan_in, std::size_t fan_out) const override {
    return gradsim::Variances{gain_ * gain_ * double(fan_in) / double(fan_out_ ? fan_out : fan_in), bias_.variance()};
  }

 private:
  double std_of(std::size_t fan_in, std::size_t fan_out) const { return gain_ / std::sqrt(double(fan_out_ ? fan_out : fan_in)); }
  bool fan_out_, uniform_;
  double gain_;
  gradsim_plugins::Bias bias_;
};
GRADSIM_INITIALIZER("he", He)
GRADSIM_INITIALIZER("kaiming", He)

// xavier (glorot): Var W = gain^2 * 2 / (fan_in + fan_out), normal or uniform; biases
// N(0, bias_std^2) (0 by default).
// Glorot & Bengio (2010): keeps the variance of activations and of gradients level together.
#include <cmath>
#include <gradsim/gradsim.hpp>

#include "gain.hpp"

class Xavier final : public gradsim::Initializer {
 public:
  static constexpr const char* help = "W with variance gain^2 * 2/(fan_in + fan_out) (normal or uniform), b ~ N(0, bias_std^2)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("gain", 1.0, 0.0, 1e6, "multiplies the standard deviation"),
            gradsim::ParamDecl::choice("distribution", "normal", {"normal", "uniform"}, "shape of the distribution"),
            gradsim_plugins::Bias::decl()};
  }
  explicit Xavier(const gradsim::Params& p)
      : gain_(p.number("gain")), uniform_(p.text("distribution") == "uniform"), bias_(p) {}

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

  // Var W = gain^2 2/(fan_in + fan_out) = sigma_w2 / fan_in.
  std::optional<gradsim::Variances> variances(std::size_t fan_in, std::size_t fan_out) const override {
    return gradsim::Variances{gain_ * gain_ * 2.0 * double(fan_in) / double(fan_in + fan_out), bias_.variance()};
  }

 private:
  double std_of(std::size_t fan_in, std::size_t fan_out) const { return gain_ * std::sqrt(2.0 / double(fan_in + fan_out)); }
  double gain_;
  bool uniform_;
  gradsim_plugins::Bias bias_;
};
GRADSIM_INITIALIZER("xavier", Xavier)
GRADSIM_INITIALIZER("glorot", Xavier)

// An initialiser: sparse initialisation (Martens 2010). Each output unit gets exactly k
// non-zero incoming weights, N(0, gain^2 / k); the rest are 0. Every entry then has mean 0 and
// variance (k / fan_in) * gain^2 / k = gain^2 / fan_in, which it declares so that mean-field
// theory can use it, though its entries are far from Gaussian.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <gradsim/gradsim.hpp>

class Sparse final : public gradsim::Initializer {
 public:
  static constexpr const char* help = "k non-zero N(0, gain^2/k) weights per unit, b = 0 (example plugin)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::integer("k", 15, 1, 1000000, "non-zero incoming weights per unit (at most fan_in)"),
            gradsim::ParamDecl::real("gain", 1.0, 0.0, 1e6, "sigma_w")};
  }
  explicit Sparse(const gradsim::Params& p) : k_(std::size_t(p.integer("k"))), gain_(p.number("gain")) {}

  void fill(gradsim::WeightRole role, std::size_t fan_in, std::size_t, gradsim::Matrix<double>& value,
            gradsim::Rng& rng) const override {
    value.setZero();
    if (role == gradsim::WeightRole::bias) return;
    const std::size_t k = std::min(k_, fan_in);
    std::vector<std::size_t> rows(fan_in);
    for (Eigen::Index j = 0; j < value.cols(); ++j) {  // k distinct rows: a partial Fisher-Yates shuffle
      std::iota(rows.begin(), rows.end(), 0);
      for (std::size_t i = 0; i < k; ++i) {
        std::swap(rows[i], rows[i + std::size_t(rng.uniform() * double(fan_in - i))]);
        value(Eigen::Index(rows[i]), j) = gain_ / std::sqrt(double(k)) * rng.normal();
      }
    }
  }
  // Var = (k / fan_in) * gain^2 / k (with k <= fan_in).
  std::optional<gradsim::Variances> variances(std::size_t, std::size_t) const override {
    return gradsim::Variances{gain_ * gain_, 0.0};
  }

 private:
  std::size_t k_;
  double gain_;
};
GRADSIM_INITIALIZER("sparse", Sparse)

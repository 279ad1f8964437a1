// The array types plugins compute on, and the random stream they draw from.
// Every tensor is (batch x features), column-major, one Eigen matrix: plugins work on whole
// arrays, never one virtual call per element.
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace gradsim {

/// A batch of rows (batch x features) or a parameter (fan_in x fan_out, or 1 x fan_out).
template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

/// The floating-point formats the engine is instantiated for.
using bfloat16 = Eigen::bfloat16;
using float16 = Eigen::half;

/// Scalar functions for every format: the standard ones for float and double; for bfloat16
/// and float16, computed in float and rounded back (what Eigen does for its own exp, tanh).
namespace fn {
#define GRADSIM_SCALAR_FN(name)                                                  \
  template <class T>                                                             \
  T name(T x) {                                                                  \
    if constexpr (std::is_floating_point_v<T>) return std::name(x);             \
    else return T(std::name(static_cast<float>(x)));                            \
  }
GRADSIM_SCALAR_FN(exp)
GRADSIM_SCALAR_FN(expm1)
GRADSIM_SCALAR_FN(log)
GRADSIM_SCALAR_FN(log1p)
GRADSIM_SCALAR_FN(tanh)
GRADSIM_SCALAR_FN(erf)
GRADSIM_SCALAR_FN(sqrt)
#undef GRADSIM_SCALAR_FN
}  // namespace fn

/// c = a b, or c += a b with `accumulate`; a and b may be transposed views (x.transpose()).
/// float64 and float32: a plain Eigen product. bfloat16 and float16: the product is computed
/// and accumulated in float32 and the result rounded to T once, as GPU libraries and PyTorch do
/// for these formats (Eigen's own emulated product would round after every multiply-add, and
/// is 20-50x slower). Layers should use it for their products.
template <class T, class A, class B>
void matmul(const A& a, const B& b, Matrix<T>& c, bool accumulate = false) {
  if constexpr (std::is_floating_point_v<T>) {
    if (accumulate) c.noalias() += a * b;
    else c.noalias() = a * b;
  } else {
    Matrix<float> p = a.template cast<float>() * b.template cast<float>();
    if (accumulate) p += c.template cast<float>();
    c = p.template cast<T>();
  }
}

/// ||m||_F accumulated in float64 whatever T is, so that measuring cannot overflow.
template <class T>
double norm_f64(const Matrix<T>& m) {
  double s = 0;
  for (Eigen::Index i = 0; i < m.size(); ++i) {
    const double v = static_cast<double>(static_cast<float>(m.data()[i]));
    s += v * v;
  }
  return std::sqrt(s);
}
template <>
inline double norm_f64(const Matrix<double>& m) { return m.norm(); }

/// splitmix64: turns any 64-bit value into a well-mixed one (used to derive seeds).
constexpr std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// xoshiro256** with its own normal sampler, so that a seed gives the same numbers on every
/// platform and standard library (std::normal_distribution does not promise that).
class Rng {
 public:
  /// Stream `stream` of seed `seed`: different streams are independent.
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0) {
    std::uint64_t z = mix64(seed) ^ mix64(stream + 0x632be59bd9b4e019ull);
    for (auto& s : s_) s = z = mix64(z);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3], s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1), 53 random bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  /// Standard normal (Marsaglia's polar method; the spare value is kept for the next call).
  double normal() {
    if (has_spare_) return has_spare_ = false, spare_;
    double u, v, s;
    do {
      u = 2 * uniform() - 1, v = 2 * uniform() - 1, s = u * u + v * v;
    } while (s >= 1 || s == 0);
    const double f = std::sqrt(-2 * std::log(s) / s);
    spare_ = v * f, has_spare_ = true;
    return u * f;
  }
  /// Fills m with independent N(0, std^2) values, column by column.
  template <class Derived>
  void fill_normal(Eigen::MatrixBase<Derived>& m, double std = 1) {
    for (Eigen::Index j = 0; j < m.cols(); ++j)
      for (Eigen::Index i = 0; i < m.rows(); ++i) m(i, j) = typename Derived::Scalar(std * normal());
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace gradsim

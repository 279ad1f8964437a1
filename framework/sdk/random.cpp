// The random stream of random.hpp, compiled once in the gradsim library.
#include <gradsim/random.hpp>

#include <algorithm>
#include <cmath>

#include "simd.hpp"

namespace gradsim {

namespace {
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = mix64(seed) ^ mix64(stream + 0x632be59bd9b4e019ull);
  for (auto& s : s_) s = z = mix64(z);
}

std::uint64_t Rng::next() {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3], s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

double Rng::normal() {
  if (has_spare_) return has_spare_ = false, spare_;
  double u, v, s;
  do {
    u = 2 * uniform() - 1, v = 2 * uniform() - 1, s = u * u + v * v;
  } while (s >= 1 || s == 0);
  const double f = std::sqrt(-2 * std::log(s) / s);
  spare_ = v * f, has_spare_ = true;
  return u * f;
}

// One draw from the stream keys a counter-based block of normals (simd::normal), made
// in chunks that stay in the first-level cache and then scaled and rounded into m.
#define GRADSIM_DEFINE_FILL(T)                                                            \
  void Rng::fill_normal(Matrix<T>& m, double std) {                                       \
    constexpr std::size_t kChunk = 2048;                                                  \
    alignas(64) double buf[kChunk];                                                       \
    const std::uint64_t key = next();                                                     \
    const std::size_t n = std::size_t(m.size());                                          \
    for (std::size_t i = 0; i < n; i += kChunk) {                                         \
      const std::size_t k = std::min(kChunk, n - i);                                      \
      simd::normal(key, i, buf, k);                                                       \
      simd::scale_round(buf, std, m.data() + i, k);                                       \
    }                                                                                     \
  }
GRADSIM_FOR_EACH_FORMAT(GRADSIM_DEFINE_FILL)

void Rng::fill_uniform(Matrix<double>& m, double lo, double hi) {
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = lo + (hi - lo) * uniform();
}

}  // namespace gradsim

// The random stream plugins draw from. The engine hands one to every initialiser, loss and
// layer that asks, each keyed to what it draws for, so that adding a plugin never shifts the
// numbers another one gets.
#pragma once

#include <cstdint>

#include "abi.hpp"
#include "tensor.hpp"

namespace gradsim {

/// xoshiro256** with its own normal sampler, so that a seed gives the same numbers on every
/// platform and standard library (std::normal_distribution does not promise that). The
/// samplers run in the gradsim library.
class GRADSIM_EXPORT Rng {
 public:
  /// Stream `stream` of seed `seed`: different streams are independent.
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0);
  /// 64 random bits.
  std::uint64_t next();
  /// Uniform in [0, 1), 53 random bits.
  double uniform();
  /// Standard normal (Marsaglia's polar method; the spare value is kept for the next call).
  double normal();
  /// Fills m, column by column, with independent N(0, std^2) values computed in float64 and
  /// rounded to T: the ziggurat method (exact up to rounding) on a counter-based block keyed
  /// by one draw from this stream, vectorised; value i depends only on that draw and i.
#define GRADSIM_DECLARE_FILL(T) void fill_normal(Matrix<T>& m, double std = 1);
  GRADSIM_FOR_EACH_FORMAT(GRADSIM_DECLARE_FILL)
#undef GRADSIM_DECLARE_FILL
  /// Fills m, column by column, with independent U(lo, hi) values.
  void fill_uniform(Matrix<double>& m, double lo, double hi);

 private:
  std::uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace gradsim

// Statistics of one tensor, gathered in one pass and in float64 whatever the simulated format,
// so that measuring never overflows where the simulation did not.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <gradsim/tensor.hpp>

#include "gradsim.pb.h"

namespace gradsim {

/// Plain counters, filled on the hot path; turned into a TensorStats message afterwards.
struct Stats {
  std::uint64_t count = 0, nan = 0, pos_inf = 0, neg_inf = 0, zeros = 0, subnormal = 0;
  double sumsq = 0;           // all finite values, for the norm
  double shift = 0, s1 = 0, s2 = 0;  // sums of (x - shift) and its square, finite values
  double max_abs = 0, min_abs_nonzero = 0;

  double norm() const { return pos_inf + neg_inf ? INFINITY : nan ? NAN : std::sqrt(sumsq); }
  std::uint64_t nonfinite() const { return nan + pos_inf + neg_inf; }
  std::uint64_t finite() const { return count - nonfinite(); }
  /// Adds the elements counted by `o`, as if one pass had seen both tensors.
  void merge(const Stats& o);
  void to_proto(v1::TensorStats& out) const;
};

/// The statistics of m, in one pass (vectorised; partial sums in a fixed order, so the result
/// does not depend on the CPU's vector width).
template <class T>
Stats stats_of(const Matrix<T>& m);

/// Whether every element of m is finite.
template <class T>
bool all_finite(const Matrix<T>& m);

inline void Stats::merge(const Stats& o) {
  if (o.finite()) {
    if (finite() == 0) shift = o.shift;
    // Re-centre o's sums on our shift: x - a = (x - b) + (b - a).
    const double delta = o.shift - shift, n = double(o.finite());
    s2 += o.s2 + 2 * delta * o.s1 + n * delta * delta;
    s1 += o.s1 + n * delta;
    if (o.max_abs > max_abs) max_abs = o.max_abs;
    if (o.min_abs_nonzero > 0 && (min_abs_nonzero == 0 || o.min_abs_nonzero < min_abs_nonzero))
      min_abs_nonzero = o.min_abs_nonzero;
  }
  count += o.count, nan += o.nan, pos_inf += o.pos_inf, neg_inf += o.neg_inf;
  zeros += o.zeros, subnormal += o.subnormal, sumsq += o.sumsq;
}

inline void Stats::to_proto(v1::TensorStats& out) const {
  const std::uint64_t finite = this->finite();
  out.set_count(count);
  out.set_norm(norm());
  if (finite) {
    const double m = s1 / double(finite);
    out.set_mean(shift + m);
    out.set_variance(std::max(0.0, s2 / double(finite) - m * m));
  }
  out.set_zero_fraction(count ? double(zeros) / double(count) : 0);
  out.set_nan(nan), out.set_pos_inf(pos_inf), out.set_neg_inf(neg_inf);
  out.set_subnormal(subnormal);
  out.set_max_abs(max_abs), out.set_min_abs_nonzero(min_abs_nonzero);
}

}  // namespace gradsim

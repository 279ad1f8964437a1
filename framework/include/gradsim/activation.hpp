// The Activation interface, and the adapter that turns two scalar functions into one.
#pragma once

#include <type_traits>
#include <vector>

#include "abi.hpp"
#include "compute.hpp"
#include "params.hpp"
#include "simd.hpp"
#include "tensor.hpp"

namespace gradsim {

/// An elementwise activation's scalar functions, for the core: the engine maps them over
/// arrays, and theory evaluates them (in float64) on quadrature nodes.
template <class T>
struct Elementwise {
  const void* fn = nullptr;          ///< the plugin's function object (holds its parameters)
  ScalarKernel<T> f = nullptr;       ///< y = f(x)
  ScalarKernel<T> df = nullptr;      ///< y = f'(x)
  PairKernel<T> df_xy = nullptr;     ///< out = f'(x) from x and y = f(x), if the plugin has one
  std::vector<double> kinks;         ///< points where f' jumps (relu: 0), for integration

  double f_at(double x) const requires std::is_same_v<T, double> { double y; f(fn, &x, &y, 1); return y; }
  double df_at(double x) const requires std::is_same_v<T, double> { double y; df(fn, &x, &y, 1); return y; }
};

/// An activation maps h to a = act(h), same shape, with no weights and no state.
template <class T>
class GRADSIM_EXPORT Activation {
 public:
  virtual ~Activation() = default;
  /// a = act(h).
  virtual void forward(const Matrix<T>& h, Matrix<T>& a) const = 0;
  /// dh = (da/dh)^T da. Gets both h and a, so that e.g. tanh can use 1 - a^2.
  virtual void backward(const Matrix<T>& h, const Matrix<T>& a, const Matrix<T>& da,
                        Matrix<T>& dh) const = 0;
  /// Forward mode: da = (da/dh) dh. Optional (false: none); an elementwise activation has it.
  virtual bool tangent(const Matrix<T>& /*h*/, const Matrix<T>& /*a*/, const Matrix<T>& /*dh*/,
                       Matrix<T>& /*da*/) const {
    return false;
  }
  /// The scalar functions of an elementwise activation; nullptr for one that is not (softmax).
  virtual const Elementwise<T>* elementwise() const { return nullptr; }
};

namespace detail {
template <class F, class = void>
struct has_kinks : std::false_type {};
template <class F>
struct has_kinks<F, std::void_t<decltype(std::declval<const F&>().kinks())>> : std::true_type {};
template <class F, class = void>
struct has_df_xy : std::false_type {};
template <class F>
struct has_df_xy<F, std::void_t<decltype(std::declval<const F&>().template df<double>(1.0, 1.0))>>
    : std::true_type {};
}  // namespace detail

/// Runs an elementwise activation F, written as two scalar templates
///   template <class T> static T f(T x);   template <class T> static T df(T x);   // df = f'
/// over whole arrays through the core's map:  a = f(h),  dh = da * f'(h)  (elementwise).
/// If F is constructible from Params, it is built from the spec's parameters and f/df may be
/// non-static members reading them (e.g. a leaky_relu slope). An optional member
///   std::vector<double> kinks() const;   // where f' jumps
/// tells theory where to split its integrals, and an optional
///   template <class T> static T df(T x, T y);   // f'(x) given y = f(x), equal to df(x)
/// (tanh: 1 - y^2) saves computing f again in the backward pass.
template <class F, class T>
class ElementwiseActivation final : public Activation<T> {
 public:
  explicit ElementwiseActivation(const Params& p) : fn_(make(p)) {
    e_.fn = &fn_, e_.f = &f_kernel, e_.df = &df_kernel;
    if constexpr (detail::has_df_xy<F>::value) e_.df_xy = &df_xy_kernel;
    if constexpr (detail::has_kinks<F>::value) e_.kinks = fn_.kinks();
  }
  ElementwiseActivation(const ElementwiseActivation&) = delete;  // e_.fn points at fn_
  void forward(const Matrix<T>& h, Matrix<T>& a) const override { map(h, a, e_.f, e_.fn); }
  void backward(const Matrix<T>& h, const Matrix<T>& a, const Matrix<T>& da, Matrix<T>& dh) const override {
    if (e_.df_xy) map_times(h, a, da, dh, e_.df_xy, e_.fn);
    else map_times(h, da, dh, e_.df, e_.fn);
  }
  // Elementwise: da/dh is diagonal, so forward mode is the backward pass.
  bool tangent(const Matrix<T>& h, const Matrix<T>& a, const Matrix<T>& dh, Matrix<T>& da) const override {
    backward(h, a, dh, da);
    return true;
  }
  const Elementwise<T>* elementwise() const override { return &e_; }

 private:
  static F make(const Params& p) {
    if constexpr (std::is_constructible_v<F, const Params&>) return F(p);
    else return F{};
  }
  // Compiled in the plugin for every instruction-set level (simd.hpp), chosen at load time.
  GRADSIM_CLONES static void f_kernel(const void* fn, const T* x, T* y, std::size_t n) {
    const F& g = *static_cast<const F*>(fn);
    for (std::size_t i = 0; i < n; ++i) y[i] = g.template f<T>(x[i]);
  }
  GRADSIM_CLONES static void df_kernel(const void* fn, const T* x, T* y, std::size_t n) {
    const F& g = *static_cast<const F*>(fn);
    for (std::size_t i = 0; i < n; ++i) y[i] = g.template df<T>(x[i]);
  }
  GRADSIM_CLONES static void df_xy_kernel(const void* fn, const T* x, const T* y, T* out, std::size_t n) {
    const F& g = *static_cast<const F*>(fn);
    for (std::size_t i = 0; i < n; ++i) out[i] = g.template df<T>(x[i], y[i]);
  }
  F fn_;
  Elementwise<T> e_;
};

}  // namespace gradsim

// The Activation interface, and the adapter that turns two scalar functions into one.
#pragma once

#include <type_traits>

#include "params.hpp"
#include "tensor.hpp"

namespace gradsim {

/// An activation maps h to a = act(h), same shape, with no parameters of its own.
template <class T>
class Activation {
 public:
  virtual ~Activation() = default;
  /// a = act(h).
  virtual void forward(const Matrix<T>& h, Matrix<T>& a) = 0;
  /// dh = (da/dh)^T da. Gets both h and a, so that e.g. tanh can use 1 - a^2.
  virtual void backward(const Matrix<T>& h, const Matrix<T>& a, const Matrix<T>& da,
                        Matrix<T>& dh) = 0;
};

/// Runs an elementwise activation F, written as two scalar templates
///   template <class T> static T f(T x);   template <class T> static T df(T x);   // df = f'
/// over whole arrays:  a = f(h),  dh = da * f'(h)  (elementwise).
/// If F is constructible from Params, it is built from the spec's parameters and f/df may be
/// non-static members reading them (e.g. a leaky_relu slope).
template <class F, class T>
class ElementwiseActivation final : public Activation<T> {
 public:
  explicit ElementwiseActivation(const Params& p) : fn_(make(p)) {}
  void forward(const Matrix<T>& h, Matrix<T>& a) override {
    a = h.unaryExpr([this](T x) { return fn_.template f<T>(x); });
  }
  void backward(const Matrix<T>& h, const Matrix<T>&, const Matrix<T>& da,
                Matrix<T>& dh) override {
    dh = da.cwiseProduct(h.unaryExpr([this](T x) { return fn_.template df<T>(x); }));
  }

 private:
  static F make(const Params& p) {
    if constexpr (std::is_constructible_v<F, const Params&>) return F(p);
    else return F{};
  }
  F fn_;
};

}  // namespace gradsim

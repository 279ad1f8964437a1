// A recurrent network as the engine's chain of blocks: one time step of a stack of cells is a
// layer (Unrolled) whose state s_t = [s_t^1, ..., s_t^L (, m_t)] holds every layer's cell state
// (and, when the loss reads every step, the running mean m_t of the top layer's h). Every block
// applies the same Unrolled object with the same weights, so the engine's machinery (formats,
// statistics, mitigations, training, traces) runs a recurrent network unchanged, and the
// weights' gradients are summed over the steps: backpropagation through time. A last node
// (Readout) hands the loss the top layer's h_T, or the mean.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gradsim/plugin.hpp>

namespace gradsim {

template <class T>
class Unrolled final : public Layer<T> {
 public:
  /// At most this many saved() slots per cell and call.
  static constexpr std::size_t kSlots = 16;

  /// cells[k] reads x_t (k = 0, `input` columns) or h_t of layer k-1 (`hidden` columns).
  Unrolled(std::vector<std::unique_ptr<Cell<T>>> cells, std::size_t input, std::size_t hidden, bool mean,
           double input_std, std::size_t steps)
      : cells_(std::move(cells)), input_(input), hidden_(hidden), mean_(mean), input_std_(input_std), steps_(steps) {
    std::size_t first = 0, off = 0;
    for (std::size_t k = 0; k < cells_.size(); ++k) {
      const auto decls = cells_[k]->weights();
      const std::size_t cols = cells_[k]->state_cols();
      if (cols < hidden_)
        throw std::invalid_argument("its state has " + std::to_string(cols) + " columns, fewer than hidden (" +
                                    std::to_string(hidden_) + ")");
      parts_.push_back({first, decls.size(), off, cols});
      for (auto d : decls) {
        if (cells_.size() > 1) d.name = "layer" + std::to_string(k) + "." + d.name;
        decls_.push_back(d);
      }
      first += decls.size(), off += cols;
    }
    state_cols_ = off + (mean_ ? hidden_ : 0);
  }
  /// Columns of the whole state.
  std::size_t state_cols() const { return state_cols_; }
  /// Where the loss reads: the top layer's h, or the running mean.
  std::size_t read_offset() const { return mean_ ? state_cols_ - hidden_ : parts_.back().offset; }

  std::vector<WeightDecl> weights() const override { return decls_; }
  void init_weight(std::size_t i, Matrix<double>& value, Rng& rng) const override {
    for (std::size_t k = 0; k < parts_.size(); ++k)
      if (i < parts_[k].first + parts_[k].count) return cells_[k]->init_weight(i - parts_[k].first, value, rng);
  }

  void forward(Ctx<T>& ctx, const Matrix<T>& s_prev, Matrix<T>& s) const override {
    Matrix<T>& x = ctx.saved(0);
    x.resize(s_prev.rows(), Eigen::Index(input_));
    Rng draw = ctx.rng();  // a copy: the same x_t in every pass
    draw.fill_normal(x, input_std_);
    s.resize(s_prev.rows(), Eigen::Index(state_cols_));
    Matrix<T> in = x, out;
    for (std::size_t k = 0; k < parts_.size(); ++k) {
      const auto& p = parts_[k];
      Ctx<T> sub = ctx.slice(p.first, p.count);
      cells_[k]->forward(sub, state(s_prev, p), in, out);
      if (out.rows() != s.rows() || std::size_t(out.cols()) != p.cols)
        throw std::runtime_error("cell " + std::to_string(k) + " made a state of " + std::to_string(out.cols()) +
                                 " columns, not the " + std::to_string(p.cols) + " it declares");
      s.middleCols(Eigen::Index(p.offset), Eigen::Index(p.cols)) = out;
      keep(ctx, sub, k);
      in = out.leftCols(Eigen::Index(hidden_));
    }
    if (mean_) s.rightCols(Eigen::Index(hidden_)) = s_prev.rightCols(Eigen::Index(hidden_)) + in * T(1.0 / double(steps_));
  }

  void backward(Ctx<T>& ctx, const Matrix<T>& s_prev, const Matrix<T>& s, const Matrix<T>& ds,
                Matrix<T>& ds_prev) const override {
    const auto H = Eigen::Index(hidden_);
    ds_prev.resize(ds.rows(), ds.cols());
    Matrix<T> carry = Matrix<T>::Zero(ds.rows(), H);  // dL/d(h_t of layer k), from the layer above
    if (mean_) {
      ds_prev.rightCols(H) = ds.rightCols(H);
      carry = ds.rightCols(H) * T(1.0 / double(steps_));
    }
    Matrix<T> dprev, dx;
    for (std::size_t k = parts_.size(); k-- > 0;) {
      const auto& p = parts_[k];
      Ctx<T> sub = ctx.slice(p.first, p.count);
      restore(ctx, sub, k);
      Matrix<T> dstate = ds.middleCols(Eigen::Index(p.offset), Eigen::Index(p.cols));
      dstate.leftCols(H) += carry;
      const Matrix<T> in = k ? Matrix<T>(s.middleCols(Eigen::Index(parts_[k - 1].offset), H)) : ctx.saved(0);
      cells_[k]->backward(sub, state(s_prev, p), in, state(s, p), dstate, dprev, dx);
      ds_prev.middleCols(Eigen::Index(p.offset), Eigen::Index(p.cols)) = dprev;
      carry = dx;  // layer k's input is layer k-1's h
    }
  }

 private:
  struct Part {
    std::size_t first, count;  // its weights
    std::size_t offset, cols;  // its columns of the state
  };
  static Matrix<T> state(const Matrix<T>& s, const Part& p) {
    return s.middleCols(Eigen::Index(p.offset), Eigen::Index(p.cols));
  }
  // A cell's saved values live in this call's slots 1 + k kSlots ... until its backward.
  static void keep(Ctx<T>& ctx, Ctx<T>& sub, std::size_t k) {
    if (sub.saved_count() > kSlots)
      throw std::runtime_error("a cell kept " + std::to_string(sub.saved_count()) + " saved values; at most " +
                               std::to_string(kSlots) + " are supported");
    for (std::size_t i = sub.saved_count(); i-- > 0;) ctx.saved(1 + k * kSlots + i) = std::move(sub.saved(i));
  }
  static void restore(Ctx<T>& ctx, Ctx<T>& sub, std::size_t k) {
    for (std::size_t i = kSlots; i-- > 0;)
      if (1 + k * kSlots + i < ctx.saved_count() && ctx.saved(1 + k * kSlots + i).size())
        sub.saved(i) = std::move(ctx.saved(1 + k * kSlots + i));
  }

  std::vector<std::unique_ptr<Cell<T>>> cells_;
  std::vector<Part> parts_;
  std::vector<WeightDecl> decls_;
  std::size_t input_, hidden_;
  bool mean_;
  double input_std_;
  std::size_t steps_, state_cols_ = 0;
};

/// y = the `cols` columns of s from `offset` (what the loss reads of a recurrent state).
template <class T>
class Readout final : public Layer<T> {
 public:
  Readout(std::size_t offset, std::size_t cols) : offset_(offset), cols_(cols) {}
  void forward(Ctx<T>&, const Matrix<T>& s, Matrix<T>& y) const override {
    y = s.middleCols(Eigen::Index(offset_), Eigen::Index(cols_));
  }
  void backward(Ctx<T>&, const Matrix<T>& s, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>& ds) const override {
    ds = Matrix<T>::Zero(s.rows(), s.cols());
    ds.middleCols(Eigen::Index(offset_), Eigen::Index(cols_)) = dy;
  }
  bool tangent(Ctx<T>&, const Matrix<T>&, const Matrix<T>&, const Matrix<T>& ds, Matrix<T>& dy) const override {
    dy = ds.middleCols(Eigen::Index(offset_), Eigen::Index(cols_));
    return true;
  }

 private:
  std::size_t offset_, cols_;
};

}  // namespace gradsim

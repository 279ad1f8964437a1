// attention: multi-head self-attention over the tokens of each sequence (Vaswani et al. 2017).
// Rows come in sequences of `tokens` consecutive rows (LayerArgs::tokens); for each sequence and
// head h (d = width / heads columns):
//   Q = x Wq, K = x Wk, V = x Wv;  P_h = softmax(Q_h K_h^T / sqrt(d)) (row by row; with
//   `causal`, token i attends to tokens j <= i only);  O_h = P_h V_h;  y = [O_1 ... O_H] Wo.
// Products run in the format (float16 and bfloat16 accumulate in float32, as everywhere); each
// softmax row is computed in float64 and rounded to the format (PyTorch's float16 softmax
// computes in float32). Wv and Wo are drawn by the initialiser times `value_scale` (DeepNorm's
// beta). Reports the attention entropy (mean over sequences, heads and queries of
// -sum_j p_j ln p_j, in nats; ln(tokens) is uniform attention) as a measure.
#include <cmath>
#include <gradsim/gradsim.hpp>

namespace {

using gradsim::Matrix;

template <class T>
class Attention final : public gradsim::Layer<T> {
 public:
  static constexpr const char* help = "multi-head self-attention within each sequence of `tokens` rows";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::integer("heads", 1, 1, 1 << 20, "attention heads (must divide the width)"),
            gradsim::ParamDecl::boolean("causal", false, "a token attends only to itself and earlier tokens"),
            gradsim::ParamDecl::real("value_scale", 1.0, 0.0, 1e6, "Wv and Wo are drawn times this (DeepNorm's beta)")};
  }

  explicit Attention(const gradsim::LayerArgs& a)
      : width_(a.fan_in), heads_(std::size_t(a.params.number("heads"))), tokens_(a.tokens),
        causal_(a.params.flag("causal")), value_scale_(a.params.number("value_scale")) {
    if (a.fan_out != a.fan_in)
      throw std::invalid_argument("attention keeps the width (fan_in " + std::to_string(a.fan_in) + ", fan_out " +
                                  std::to_string(a.fan_out) + ")");
    if (width_ % heads_)
      throw std::invalid_argument(std::to_string(heads_) + " heads do not divide the width " + std::to_string(width_));
  }

  std::vector<gradsim::WeightDecl> weights() const override {
    std::vector<gradsim::WeightDecl> w;
    for (const char* name : {"Wq", "Wk", "Wv", "Wo"})
      w.push_back({name, width_, width_, gradsim::WeightRole::weight, width_, width_});
    w[2].scale = w[3].scale = value_scale_;
    return w;
  }

  bool mixes_rows() const override { return tokens_ > 1; }

  void forward(gradsim::Ctx<T>& ctx, const Matrix<T>& x, Matrix<T>& y) const override {
    if (x.rows() % Eigen::Index(tokens_))
      throw std::invalid_argument(std::to_string(x.rows()) + " rows are not whole sequences of " +
                                  std::to_string(tokens_) + " tokens");
    auto& p = ctx.saved(4);  // P of every (sequence, head): (sequences * heads * tokens) x tokens
    auto& o = ctx.saved(3);  // the heads' outputs, side by side
    auto &q = ctx.saved(0), &k = ctx.saved(1), &v = ctx.saved(2);
    gradsim::matmul(x, ctx.w(0), q);
    gradsim::matmul(x, ctx.w(1), k);
    gradsim::matmul(x, ctx.w(2), v);
    const Eigen::Index T_ = Eigen::Index(tokens_), d = Eigen::Index(width_ / heads_), n = x.rows() / T_;
    p.resize(n * Eigen::Index(heads_) * T_, T_);
    o.resize(x.rows(), x.cols());
    const double scale = 1 / std::sqrt(double(d));
    Matrix<T> qh, kh, vh, s, oh, ph;
    for (Eigen::Index b = 0; b < n; ++b)
      for (Eigen::Index h = 0; h < Eigen::Index(heads_); ++h) {
        qh = q.block(b * T_, h * d, T_, d), kh = k.block(b * T_, h * d, T_, d), vh = v.block(b * T_, h * d, T_, d);
        gradsim::matmul(qh, kh, s, {.transpose_b = true});
        ph.resize(T_, T_);
        for (Eigen::Index i = 0; i < T_; ++i) {  // softmax of row i in float64, rounded to T
          const Eigen::Index last = causal_ ? i : T_ - 1;
          double top = -INFINITY, sum = 0;
          for (Eigen::Index j = 0; j <= last; ++j) top = std::max(top, scale * gradsim::to_double(s(i, j)));
          for (Eigen::Index j = 0; j <= last; ++j) sum += std::exp(scale * gradsim::to_double(s(i, j)) - top);
          for (Eigen::Index j = 0; j < T_; ++j)
            ph(i, j) = T(j <= last ? std::exp(scale * gradsim::to_double(s(i, j)) - top) / sum : 0.0);
        }
        p.block((b * Eigen::Index(heads_) + h) * T_, 0, T_, T_) = ph;
        gradsim::matmul(ph, vh, oh);
        o.block(b * T_, h * d, T_, d) = oh;
      }
    gradsim::matmul(o, ctx.w(3), y);
  }

  // y = O Wo: dWo += O^T dy, dO = dy Wo^T. Per sequence and head: dP = dO_h V_h^T,
  // dV_h = P^T dO_h, dS = P * (dP - rowsum(dP * P)) / sqrt(d), dQ_h = dS K_h, dK_h = dS^T Q_h.
  // Then dW. += x^T d., dx = dQ Wq^T + dK Wk^T + dV Wv^T.
  void backward(gradsim::Ctx<T>& ctx, const Matrix<T>& x, const Matrix<T>&, const Matrix<T>& dy,
                Matrix<T>& dx) const override {
    const auto &p = ctx.saved(4), &o = ctx.saved(3), &q = ctx.saved(0), &k = ctx.saved(1), &v = ctx.saved(2);
    const Eigen::Index T_ = Eigen::Index(tokens_), d = Eigen::Index(width_ / heads_), n = x.rows() / T_;
    const double scale = 1 / std::sqrt(double(d));
    gradsim::matmul(o, dy, ctx.dw(3), {.transpose_a = true, .accumulate = true});
    Matrix<T> dO, dq(x.rows(), x.cols()), dk(x.rows(), x.cols()), dv(x.rows(), x.cols());
    gradsim::matmul(dy, ctx.w(3), dO, {.transpose_b = true});
    Matrix<T> qh, kh, vh, ph, doh, dp, ds, out;
    for (Eigen::Index b = 0; b < n; ++b)
      for (Eigen::Index h = 0; h < Eigen::Index(heads_); ++h) {
        qh = q.block(b * T_, h * d, T_, d), kh = k.block(b * T_, h * d, T_, d), vh = v.block(b * T_, h * d, T_, d);
        ph = p.block((b * Eigen::Index(heads_) + h) * T_, 0, T_, T_);
        doh = dO.block(b * T_, h * d, T_, d);
        gradsim::matmul(doh, vh, dp, {.transpose_b = true});
        gradsim::matmul(ph, doh, out, {.transpose_a = true});
        dv.block(b * T_, h * d, T_, d) = out;
        ds.resize(T_, T_);
        for (Eigen::Index i = 0; i < T_; ++i) {
          double dot = 0;
          for (Eigen::Index j = 0; j < T_; ++j) dot += gradsim::to_double(dp(i, j)) * gradsim::to_double(ph(i, j));
          for (Eigen::Index j = 0; j < T_; ++j)
            ds(i, j) = T(gradsim::to_double(ph(i, j)) * (gradsim::to_double(dp(i, j)) - dot) * scale);
        }
        gradsim::matmul(ds, kh, out);
        dq.block(b * T_, h * d, T_, d) = out;
        gradsim::matmul(ds, qh, out, {.transpose_a = true});
        dk.block(b * T_, h * d, T_, d) = out;
      }
    gradsim::matmul(x, dq, ctx.dw(0), {.transpose_a = true, .accumulate = true});
    gradsim::matmul(x, dk, ctx.dw(1), {.transpose_a = true, .accumulate = true});
    gradsim::matmul(x, dv, ctx.dw(2), {.transpose_a = true, .accumulate = true});
    gradsim::matmul(dq, ctx.w(0), dx, {.transpose_b = true});
    gradsim::matmul(dk, ctx.w(1), dx, {.transpose_b = true, .accumulate = true});
    gradsim::matmul(dv, ctx.w(2), dx, {.transpose_b = true, .accumulate = true});
  }

  std::vector<gradsim::Measure> measures(gradsim::Ctx<T>& ctx) const override {
    const auto& p = ctx.saved(4);
    double h = 0;
    for (Eigen::Index r = 0; r < p.rows(); ++r)
      for (Eigen::Index j = 0; j < p.cols(); ++j)
        if (const double pj = gradsim::to_double(p(r, j)); pj > 0) h -= pj * std::log(pj);
    return {{"attention_entropy", p.rows() ? h / double(p.rows()) : 0.0}};
  }

 private:
  std::size_t width_, heads_, tokens_;
  bool causal_;
  double value_scale_;
};

}  // namespace

GRADSIM_LAYER("attention", Attention)

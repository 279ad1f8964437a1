// The input-output Jacobian's singular values (SimSpec.jacobian), and their instantiations.
//
// Exact (up to jacobian.exact_width): the network is cut at block outputs that no residual
// shortcut spans, so a piece is a block or a residual segment. Each piece's Jacobian at one
// input row is computed by the plugins' own backward passes in the simulated format: the
// row's value at the piece's start is replicated once per output feature, run forward through
// the piece, and back-propagated with the identity as cotangent, so that row k of dx is row k
// of the Jacobian. GradedProduct multiplies the pieces in float64 and keeps the small singular
// values accurate.
//
// Wider: krylov_spectrum estimates the spectrum from products with blocks of 16 directions,
// J V by forward mode (Layer::tangent) and J^T U by backward passes through the whole network.
#include <cmath>

#include "error.hpp"
#include "network/engine.hpp"
#include "network/spectrum.hpp"
#include "spec/spec.hpp"

namespace gradsim {

template <class T>
struct Engine<T>::Probe {
  Engine& e;
  const std::size_t from, to;
  const Eigen::Index row, rows;
  std::vector<Matrix<T>> v, projected;  // the nodes' values on the replicated row
  std::vector<std::vector<Weight<T>*>> weights;
  std::vector<Rng> rngs;
  std::vector<std::size_t> calls;
  std::vector<Ctx<T>> ctx, proj_ctx;  // their own: the pass's hold its backward's state
  bool fresh = false;                 // forward() ran since the last backward

  Probe(Engine& engine, std::size_t f, std::size_t t, Eigen::Index r, Eigen::Index n)
      : e(engine), from(f), to(t), row(r), rows(n), v(t - f + 1), projected(t - f), ctx(t - f), proj_ctx(t - f) {
    weights.reserve(2 * (to - from)), rngs.reserve(2 * (to - from));
    for (std::size_t j = from; j < to; ++j) {
      const auto& node = e.net_.nodes[j];
      if (node.use) ctx[j - from] = e.context(*node.use, j, weights, rngs), calls.push_back(j);
      if (node.projection)
        proj_ctx[j - from] = e.context(*node.projection, e.net_.nodes.size() + j, weights, rngs),
        calls.push_back(e.net_.nodes.size() + j);
    }
  }

  void forward() {
    for (std::size_t k = 0; k < rngs.size(); ++k) rngs[k] = Rng(e.spec_.seed(), mix64(calls[k] + 0x10000));
    v[0] = e.values_[from].row(row).replicate(rows, 1);
    for (std::size_t j = from; j < to; ++j) {
      const auto& n = e.net_.nodes[j];
      const std::size_t k = j - from;
      if (n.use) {
        e.apply(*n.use, ctx[k], v[k], v[k + 1]);
      } else if (n.projection) {
        e.apply(*n.projection, proj_ctx[k], v[n.skip_from - from], projected[k]);
        v[k + 1] = projected[k] + T(n.alpha) * v[k];
      } else {
        v[k + 1] = v[n.skip_from - from] + T(n.alpha) * v[k];
      }
    }
    fresh = true;
    // A row run alone must come out as it did in the batch; a layer whose row depends on the
    // others (statistics over the batch) has no per-example Jacobian.
    const Matrix<T> alone = v.back().row(0), in_batch = e.values_[to].row(row);
    const double scale = norm_f64(in_batch), off = norm_f64(Matrix<T>(alone - in_batch));
    if (std::isfinite(scale) && !(off <= 0.05 * scale + 1e-300)) {
      std::string names;
      for (std::size_t j = from; j < to; ++j)
        if (const auto& n = e.net_.nodes[j]; n.use) names += (names.empty() ? "\"" : ", \"") + n.use->name + "\"";
      throw Error("jacobian: a row run alone comes out of block " + std::to_string(e.net_.nodes[to - 1].block) +
                  " differently than in the batch (by " + detail::format_number(off / scale) +
                  " of its norm): one of the layers (" + names + ") mixes the rows of a batch, so a row has no "
                  "Jacobian of its own; a plugin that does so should say so (Layer::mixes_rows), or drop jacobian");
    }
  }

  /// dy: (rows x width at `to`) -> dx = (d value[to] / d value[from])^T dy for each row, as
  /// Engine::backward() without the hooks. Backward passes need a forward pass each.
  Matrix<T> backward(Matrix<T> d) {
    if (!fresh) forward();
    fresh = false;
    Matrix<T> tmp, skip;
    const std::size_t none = std::size_t(-1);
    std::size_t pending = none;
    for (std::size_t j = to; j-- > from;) {
      const auto& n = e.net_.nodes[j];
      const std::size_t k = j - from;
      if (!n.use) {
        if (n.projection) e.apply_backward(*n.projection, proj_ctx[k], v[n.skip_from - from], projected[k], d, skip);
        else skip = d;
        d *= T(n.alpha);
        pending = n.skip_from;
      } else {
        e.apply_backward(*n.use, ctx[k], v[k], v[k + 1], d, tmp);
        d.swap(tmp);
      }
      if (j == pending) d += skip, pending = none;
    }
    return d;
  }

  /// dx: (rows x width at `from`) -> dy = (d value[to] / d value[from]) dx for each row.
  Matrix<T> tangent(const Matrix<T>& dx) {
    if (!fresh) forward();
    std::vector<Matrix<T>> t(v.size());
    t[0] = dx;
    for (std::size_t j = from; j < to; ++j) {
      const auto& n = e.net_.nodes[j];
      const std::size_t k = j - from;
      auto run = [&](const Use& use, Ctx<T>& c, const Matrix<T>& x, const Matrix<T>& y, const Matrix<T>& in,
                     Matrix<T>& out) {
        e.check_deadline();
        if (!use.layer->tangent(c, x, y, in, out))
          throw Error("jacobian: layer \"" + use.name + "\" has no forward mode (Layer::tangent), which the "
                      "spectra of networks wider than jacobian.exact_width need; raise exact_width to the "
                      "network's width for exact spectra, or give the layer tangent()");
        if (out.rows() != in.rows() || out.cols() != y.cols())
          throw Error("\"" + use.name + "\" returned a wrong shape from tangent()");
      };
      if (n.use) {
        run(*n.use, ctx[k], v[k], v[k + 1], t[k], t[k + 1]);
      } else if (n.projection) {
        Matrix<T> p;
        run(*n.projection, proj_ctx[k], v[n.skip_from - from], projected[k], t[n.skip_from - from], p);
        t[k + 1] = p + T(n.alpha) * t[k];
      } else {
        t[k + 1] = t[n.skip_from - from] + T(n.alpha) * t[k];
      }
    }
    return t.back();
  }
};

template <class T>
Matrix<double> Engine<T>::piece_jacobian(std::size_t from, std::size_t to, Eigen::Index row) {
  const Eigen::Index m = values_[to].cols();
  Probe probe(*this, from, to, row, m);
  return probe.backward(Matrix<T>::Identity(m, m)).unaryExpr([](T x) { return to_double(x); });
}

template <class T>
v1::Spectrum Engine<T>::krylov(Eigen::Index row) {
  // Blocks of 16 directions at a time (rows of the probe), in float64 outside, in T inside.
  Probe probe(*this, 0, values_.size() - 1, row, 16);
  auto through = [&](const Matrix<double>& x, bool transpose) {
    Matrix<double> out(transpose ? values_[0].cols() : values_.back().cols(), x.cols());
    for (Eigen::Index c = 0; c < x.cols(); c += 16) {
      const Eigen::Index w = std::min<Eigen::Index>(16, x.cols() - c);
      Matrix<T> block = Matrix<T>::Zero(16, x.rows());
      block.topRows(w) = x.middleCols(c, w).transpose().template cast<T>();
      const Matrix<T> r = transpose ? probe.backward(block) : probe.tangent(block);
      out.middleCols(c, w) = r.topRows(w).transpose().unaryExpr([](T v) { return to_double(v); });
    }
    return out;
  };
  Rng rng(spec_.seed(), mix64(std::uint64_t(row) + 0x20000));
  v1::Spectrum out;
  krylov_spectrum(std::size_t(values_.back().cols()), std::size_t(values_[0].cols()),
                  [&](const Matrix<double>& x) { return through(x, false); },
                  [&](const Matrix<double>& x) { return through(x, true); }, spec_.jacobian().krylov_dim(), rng,
                  std::uint32_t(row), out);
  return out;
}

template <class T>
typename Engine<T>::Spectra Engine<T>::jacobian() {
  const auto& js = spec_.jacobian();
  const std::size_t last = values_.size() - 1;
  std::vector<bool> spanned(values_.size(), false);  // inside a residual segment
  for (std::size_t j = 0; j < net_.nodes.size(); ++j)
    if (!net_.nodes[j].use)
      for (std::size_t v = net_.nodes[j].skip_from + 1; v <= j; ++v) spanned[v] = true;
  std::vector<long> block_at(values_.size(), -1);  // the block whose output a value is
  for (std::size_t i = 0; i < net_.block_end.size(); ++i) block_at[net_.block_end[i]] = long(i);
  std::vector<std::size_t> cuts;
  for (std::size_t v = 1; v <= last; ++v)
    if ((block_at[v] >= 0 && !spanned[v]) || v == last) cuts.push_back(v);

  Spectra out;
  if (js.per_block()) out.blocks.resize(blocks_.size());
  if (std::size_t(std::max(net_.input_width, net_.width)) > js.exact_width()) {
    for (std::uint32_t r = 0; r < js.samples(); ++r) out.network.push_back(krylov(r));
    return out;
  }
  for (std::uint32_t r = 0; r < js.samples(); ++r) {
    auto put = [&](std::vector<double> values, std::vector<v1::Spectrum>& to) {
      summarize(std::move(values), r, js.max_values(), to.emplace_back());
    };
    GradedProduct product(std::size_t(values_[0].cols()));
    std::size_t from = 0;
    for (std::size_t cut : cuts) {
      if (js.per_block())
        for (std::size_t v = from + 1; v < cut; ++v)  // block outputs inside a residual segment
          if (block_at[v] >= 0) put(product.values_after(piece_jacobian(from, v, r)), out.blocks[block_at[v]]);
      product.apply(piece_jacobian(from, cut, r));
      if (js.per_block() && block_at[cut] >= 0) put(product.values(), out.blocks[block_at[cut]]);
      from = cut;
    }
    put(product.values(), out.network);
  }
  return out;
}

#define GRADSIM_INSTANTIATE_JACOBIAN(T)                                                              \
  template Matrix<double> Engine<T>::piece_jacobian(std::size_t, std::size_t, Eigen::Index);       \
  template v1::Spectrum Engine<T>::krylov(Eigen::Index);                                           \
  template typename Engine<T>::Spectra Engine<T>::jacobian();
GRADSIM_FOR_EACH_FORMAT(GRADSIM_INSTANTIATE_JACOBIAN)

}  // namespace gradsim

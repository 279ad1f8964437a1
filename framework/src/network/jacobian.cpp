// The input-output Jacobian's singular values (SimSpec.jacobian), and their instantiations.
//
// The network is cut where no residual shortcut spans the cut, at block outputs: a piece is a
// block, or a residual segment. Each piece's Jacobian at one input row is computed by the
// plugins' own backward passes in the simulated format: the row's value at the piece's start
// is replicated once per output feature, run forward through the piece, and back-propagated
// with the identity as cotangent, so that row k of dx is row k of the Jacobian. GradedProduct
// multiplies the pieces in float64 and keeps the small singular values accurate.
#include <cmath>

#include "error.hpp"
#include "network/engine.hpp"
#include "network/spectrum.hpp"
#include "spec/spec.hpp"

namespace gradsim {

template <class T>
Matrix<double> Engine<T>::piece_jacobian(std::size_t from, std::size_t to, Eigen::Index row) {
  const std::size_t count = to - from, nodes = net_.nodes.size();
  const Eigen::Index m = values_[to].cols();
  std::vector<Matrix<T>> v(count + 1), projected(count);
  std::vector<std::vector<Weight<T>*>> weights;
  std::vector<Rng> rngs;
  weights.reserve(2 * count), rngs.reserve(2 * count);
  std::vector<Ctx<T>> ctx(count), proj_ctx(count);  // their own: the pass's hold its backward's state
  v[0] = values_[from].row(row).replicate(m, 1);
  for (std::size_t j = from; j < to; ++j) {
    const auto& n = net_.nodes[j];
    const std::size_t k = j - from;
    if (n.use) {
      ctx[k] = context(*n.use, j, weights, rngs);
      apply(*n.use, ctx[k], v[k], v[k + 1]);
    } else if (n.projection) {
      proj_ctx[k] = context(*n.projection, nodes + j, weights, rngs);
      apply(*n.projection, proj_ctx[k], v[n.skip_from - from], projected[k]);
      v[k + 1] = projected[k] + T(n.alpha) * v[k];
    } else {
      v[k + 1] = v[n.skip_from - from] + T(n.alpha) * v[k];
    }
  }
  // A row run alone must come out as it did in the batch; a layer whose row depends on the
  // others (statistics over the batch) has no per-example Jacobian.
  const Matrix<T> alone = v.back().row(0), in_batch = values_[to].row(row);
  const double scale = norm_f64(in_batch), off = norm_f64(Matrix<T>(alone - in_batch));
  if (std::isfinite(scale) && !(off <= 0.05 * scale + 1e-300)) {
    std::string names;
    for (std::size_t j = from; j < to; ++j)
      if (const auto& n = net_.nodes[j]; n.use) names += (names.empty() ? "\"" : ", \"") + n.use->name + "\"";
    throw Error("jacobian: block " + std::to_string(net_.nodes[to - 1].block) + " gives a row a different output "
                "when it runs alone than in the batch (it moved by " + detail::format_number(off / scale) +
                " of its norm): one of its layers (" + names + ") mixes the rows of a batch, so a row has no "
                "Jacobian of its own; a plugin that does so should say so (Layer::mixes_rows), or drop jacobian");
  }
  Matrix<T> d = Matrix<T>::Identity(m, m), tmp, skip;
  const std::size_t none = std::size_t(-1);
  std::size_t pending = none;
  for (std::size_t j = to; j-- > from;) {  // as Engine::backward(), without the hooks
    const auto& n = net_.nodes[j];
    const std::size_t k = j - from;
    if (!n.use) {
      if (n.projection) apply_backward(*n.projection, proj_ctx[k], v[n.skip_from - from], projected[k], d, skip);
      else skip = d;
      d *= T(n.alpha);
      pending = n.skip_from;
    } else {
      apply_backward(*n.use, ctx[k], v[k], v[k + 1], d, tmp);
      d.swap(tmp);
    }
    if (j == pending) d += skip, pending = none;
  }
  return d.unaryExpr([](T x) { return to_double(x); });
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
  template typename Engine<T>::Spectra Engine<T>::jacobian();
GRADSIM_FOR_EACH_FORMAT(GRADSIM_INSTANTIATE_JACOBIAN)

}  // namespace gradsim

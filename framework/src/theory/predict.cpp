#include "theory/predict.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "network/network.hpp"
#include "theory/meanfield.hpp"

namespace gradsim::theory {

namespace {

// Where theory's coverage ends for this network; empty if it covers it.
std::string uncovered(const v1::SimSpec& spec, const Network<double>& net) {
  const auto& n = spec.network();
  if (n.tie_weights())
    return "network.tie_weights: one weight shared by every block (theory assumes independent weights per layer)";
  if (n.layer().name() != "dense")
    return "network.layer \"" + n.layer().name() + "\": theory covers dense layers";
  if (!net.activations.front()->elementwise())
    return "network.activation \"" + n.activation().name() + "\" is not elementwise";
  if (!net.init->variances(net.input_width, net.width))
    return "init \"" + spec.init().name() + "\" does not draw independent weights of one variance";
  for (const auto& node : net.nodes)
    if (!node.use) return "residual shortcuts are not covered yet";
  const std::size_t expected = 2 * n.depth() - (n.linear_readout() ? 1 : 0);  // layer + activation
  if (net.nodes.size() != expected) {
    for (const auto& node : net.nodes)
      for (int k = 0; k < spec.mitigations_size(); ++k)
        if (!node.main && node.use->name == spec.mitigations(k).name())
          return "mitigations[" + std::to_string(k) + "] \"" + node.use->name +
                 "\" inserts layers (normalisation is not covered yet)";
    return "the network has layers besides dense layers and the activation";
  }
  return "";
}

// Quadrature needs a finite, positive length; beyond these the activation's maps are taken
// at their limit (for the activations whose length can grow without bound, the piecewise
// linear or asymptotically linear ones, chi tends to a constant).
double clamp_q(double q) { return std::clamp(q, 1e-200, 1e12); }

std::shared_ptr<const Prediction> compute(const v1::SimSpec& spec, const Registry& registry) {
  auto p = std::make_shared<Prediction>();
  const Network<double> net = build_network<double>(spec, registry);
  p->none = uncovered(spec, net);
  if (!p->none.empty()) return p;
  const Phi phi = Phi::of(*net.activations.front()->elementwise());
  const auto first = *net.init->variances(net.input_width, net.width);
  const auto rest = *net.init->variances(net.width, net.width);
  bool bias = false;  // whether the dense layer adds b
  for (std::size_t k : net.nodes.front().use->weights) bias |= net.weights[k].decl.role == WeightRole::bias;
  p->sigma_w2 = rest.sigma_w2, p->sigma_b2 = bias ? rest.sigma_b2 : 0;

  const std::size_t depth = spec.network().depth();
  const bool pairs = spec.input().has_correlation(), readout = spec.network().linear_readout();
  double m = spec.input().variance();  // E[x^2] of the block's input
  double k = pairs ? spec.input().correlation() * m : 0;  // E[x x'] of a pair
  for (std::size_t l = 0; l < depth; ++l) {
    const auto& v = l ? rest : first;
    const double b2 = bias ? v.sigma_b2 : 0;
    const double q = v.sigma_w2 * m + b2;
    p->q.push_back(q);
    const bool linear = readout && l + 1 == depth;
    if (pairs) {
      const double c = std::clamp((v.sigma_w2 * k + b2) / q, -1.0, 1.0);
      p->c.push_back(c);
      k = linear ? c * q : expect2(phi.f, phi.f, clamp_q(q), c, phi.kinks, 1e-10);
    }
    m = linear ? q : expect([&](double x) { const double y = phi.f(x); return y * y; }, clamp_q(q), phi.kinks, 1e-12);
    p->out_sq.push_back(m);
    if (l + 1 < depth) p->chi.push_back(Maps{phi, rest.sigma_w2, 0}.chi(clamp_q(q)));
  }
  for (double chi : p->chi) p->log10_first_over_last += 0.5 * std::log10(chi);
  return p;
}

}  // namespace

std::shared_ptr<const Prediction> predict(const v1::SimSpec& spec, const Registry& registry) {
  v1::SimSpec key_spec = spec;
  key_spec.clear_label(), key_spec.clear_seed(), key_spec.clear_dtype(), key_spec.clear_train();
  const std::string key = key_spec.SerializeAsString();
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Prediction>> cache;
  {
    std::lock_guard lock(mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  std::shared_ptr<const Prediction> p;
  try {
    p = compute(spec, registry);
  } catch (const std::exception& e) {
    auto failed = std::make_shared<Prediction>();
    failed->none = std::string("theory could not be computed: ") + e.what();
    p = failed;
  }
  std::lock_guard lock(mutex);
  if (cache.size() >= 4096) cache.clear();  // bounded: a sweep of many distinct points
  cache.emplace(key, p);
  return p;
}

void annotate(const Prediction& p, bool flow_changed, v1::SimTrace& out) {
  auto& pred = *out.mutable_prediction();
  if (!p.none.empty() || flow_changed) {
    pred.set_none(!p.none.empty() ? p.none
                                  : "a mitigation changed the flowing gradient (theory predicts the network without it)");
    return;
  }
  pred.set_sigma_w2(p.sigma_w2), pred.set_sigma_b2(p.sigma_b2);
  pred.set_log10_first_over_last(p.log10_first_over_last);
  auto& layers = *out.mutable_layers();
  if (std::size_t(layers.size()) != p.q.size()) return;
  for (std::size_t l = 0; l < p.q.size(); ++l) {
    auto& layer = layers[int(l)];
    layer.set_predicted_q(p.q[l]), layer.set_predicted_output_sq(p.out_sq[l]);
    if (!p.c.empty()) layer.set_predicted_correlation(p.c[l]);
  }
  double g = layers[layers.size() - 1].grad_norm();  // the anchor
  if (!(std::isfinite(g) && g > 0)) return;
  for (std::size_t l = p.q.size(); l-- > 0;) {
    layers[int(l)].set_predicted_grad_norm(g);
    if (l) g *= std::sqrt(p.chi[l - 1]);
  }
}

}  // namespace gradsim::theory

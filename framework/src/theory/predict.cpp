#include "theory/predict.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "network/network.hpp"
#include "spec/spec.hpp"
#include "theory/batchnorm.hpp"
#include "theory/meanfield.hpp"

namespace gradsim::theory {

namespace {

// Where theory's coverage ends for this network, by its parts; empty if it covers them all.
std::string uncovered(const v1::SimSpec& spec, const Network<double>& net) {
  const auto& n = spec.network();
  if (!n.recurrent().cell().name().empty())
    return "network.recurrent: a recurrent network (theory here covers feed-forward stacks)";
  if (n.has_transformer())
    return "network.transformer: attention mixes tokens (theory here covers feed-forward stacks of one row each)";
  if (n.tie_weights())
    return "network.tie_weights: one weight shared by every block (theory assumes independent weights per layer)";
  if (n.layer().name() != "dense")
    return "network.layer \"" + n.layer().name() + "\": theory covers dense layers";
  if (!net.activations.front()->elementwise())
    return "network.activation \"" + n.activation().name() + "\" is not elementwise";
  if (!net.init->variances(net.input_width, net.width))
    return "init \"" + spec.init().name() + "\" does not draw independent weights of one variance";
  for (std::size_t j = 0; j < net.block_end.back(); ++j) {  // the blocks (a task's read-out comes after)
    const auto& node = net.nodes[j];
    if (!node.use) {
      if (node.projection) return "a residual shortcut with a projection (input_width != width) is not covered yet";
      continue;
    }
    if (node.main || node.use->name == n.activation().name()) continue;
    for (int k = 0; k < spec.mitigations_size(); ++k) {
      if (node.use->name != spec.mitigations(k).name()) continue;
      const std::string where = "mitigations[" + std::to_string(k) + "] \"" + node.use->name + "\"";
      if (node.use->name == "layer_norm" || node.use->name == "rms_norm") break;
      if (node.use->name != "batch_norm")
        return where + " inserts layers (of the normalisations, theory covers layer, RMS and batch norm)";
      const std::string placement = params_of(spec.mitigations(k)).text("placement");
      if (placement != "pre_activation" && placement != "post_activation")
        return where + " at " + placement + ": theory covers batch norm before or after the activation";
      const auto norms = std::count_if(spec.mitigations().begin(), spec.mitigations().end(),
                                       [](const auto& m) { return m.name() == "batch_norm"; });
      if (n.activation_first() || n.linear_readout() || spec.input().has_correlation() || spec.batch() < 4 ||
          norms > 1 || std::any_of(net.nodes.begin(), net.nodes.end(), [](const auto& m) { return !m.use; }))
        return where + ": theory covers one batch norm in a plain stack (no residual shortcuts or linear "
                       "read-out, activation after the layer, no input.correlation, a batch of at least 4)";
      break;
    }
    if (node.use->name == "batch_norm" || node.use->name == "layer_norm" || node.use->name == "rms_norm") continue;
    return "layer \"" + node.use->name + "\" is not covered";
  }
  return "";
}

// Quadrature needs a finite, positive length; beyond these the activation's maps are taken
// at their limit (for the activations whose length can grow without bound, the piecewise
// linear or asymptotically linear ones, the maps' ratios tend to constants).
double clamp_q(double q) { return std::clamp(q, 1e-200, 1e12); }

// Batch norm's Monte Carlo expectations, shared by the configurations that ask the same of
// the same activation (a sweep over depth asks the same at every point): key -> value.
template <class F>
double remembered(const std::string& key, F&& compute) {
  static std::mutex mutex;
  static std::map<std::string, double> memory;
  {
    std::lock_guard lock(mutex);
    if (auto it = memory.find(key); it != memory.end()) return it->second;
  }
  const double value = compute();
  std::lock_guard lock(mutex);
  if (memory.size() >= 4096) memory.clear();
  return memory.emplace(key, value).first->second;
}

std::string key_of(const v1::PluginRef& activation, std::initializer_list<double> numbers) {
  std::string key = activation.SerializeAsString();
  for (double x : numbers) key.append(reinterpret_cast<const char*>(&x), sizeof x);
  return key;
}

// One value of the network in the wide limit, per feature: second moment p, mean m (over the
// features), the cross moment k of a correlated input pair, and whether it is a centred
// Gaussian field (a dense layer's output, or a sum of them and of the input).
struct Field {
  double p = 0, m = 0, k = 0;
  bool gaussian = false;
  bool normalised = false;  // a batch norm's output: sqrt(B) times a point on the centred sphere
};

// The network's values forward (lengths, means, pair moments) and E||dL/d value||^2 backward,
// node by node: a mean-field interpreter of the node list. Backward it assumes gradient
// independence (the backward pass sees weights independent of the forward's), exact for wide
// feed-forward stacks and for residual branches that end in a dense layer; a branch that
// ends in its activation, x + alpha phi(W x + b), breaks it (relu, alpha = 1: measured growth
// 12.4 to 12.8 decades over 60 blocks at widths 128 to 1024, against its 8.9), so it is refused.
std::string interpret(const v1::SimSpec& spec, const Network<double>& net, const Phi& phi, Prediction& p) {
  const std::size_t n = net.block_end.back();  // the blocks, without a task's read-out
  const bool pairs = spec.input().has_correlation();
  std::vector<Field> v(n + 1);
  v[0] = {spec.input().variance(), 0, pairs ? spec.input().correlation() * spec.input().variance() : 0, true};
  std::vector<double> factor(n, 1);  // E||d in||^2 / E||d out||^2 of each layer node
  // The activation's last input and results: once the maps reach their fixed point, deeper
  // blocks reuse them instead of integrating again (a deep chaotic net with input pairs would
  // otherwise spend a two-dimensional integral on every block).
  std::optional<std::tuple<Field, Field, double>> last;
  auto same = [](const Field& a, const Field& b) {
    return a.m == b.m && std::fabs(a.p - b.p) <= 1e-15 * a.p && std::fabs(a.k - b.k) <= 1e-15 * a.p;
  };
  // Batch norm (Yang et al. 2019; theory/batchnorm.hpp): the rows of a batch are no longer
  // independent, so k carries the cross moment of two different rows instead of an input
  // pair's, and the norm together with its activation crosses a block with one factor, put on
  // the norm's node (the activation's is 1).
  const double B = double(spec.batch());
  const double next_w2 = net.init->variances(net.width, net.width)->sigma_w2;
  bool before = false;  // the norm's placement (uncovered() allows one batch norm, before or after)
  for (const auto& m : spec.mitigations())
    if (m.name() == "batch_norm") before = params_of(m).text("placement") == "pre_activation";
  std::optional<SphereMoments> sphere;
  std::optional<double> steady;  // the factor of the blocks after the first: their h is in a steady state
  for (std::size_t j = 0; j < n; ++j) {
    const auto& node = net.nodes[j];
    const Field& x = v[j];
    Field& y = v[j + 1];
    if (node.use && !node.main && node.use->name == "batch_norm") {
      const Field& h = before ? x : v[j - 1];  // the layer's output: the norm's input, or the activation's
      if (node.block == 0 || !steady) {
        const BatchField field{h.p - h.k, (h.p - h.k) / B + h.k};
        factor[j] = remembered(key_of(spec.network().activation(), {B, double(before), next_w2, field.centred, field.mean}), [&] {
          return batch_norm_step(phi, spec.batch(), before, next_w2, field, 1 << 16).value / next_w2;
        });
        if (node.block > 0) steady = factor[j];
      } else {
        factor[j] = *steady;
      }
      factor[before ? j + 1 : j - 1] = 1;  // the activation's part is in the norm's factor
      y = {1, 0, -1 / (B - 1), false, true};  // |z|^2 = B with batch mean 0
      continue;
    }
    if (node.use && !node.main && (node.use->name == "layer_norm" || node.use->name == "rms_norm")) {
      // Over a row's n features, in the wide limit: the row's mean is the field's mean m and
      // its mean square p, so y = (x - m) / sqrt(p - m^2 + eps) (RMS: x / sqrt(p + eps)), and
      // backward E||dx||^2 = E||dy||^2 / (p - m^2 + eps): the norm's Jacobian removes the
      // two directions 1 and y, which weigh 2/n of the gradient.
      const bool rms = node.use->name == "rms_norm";
      double eps = 0;
      for (const auto& m : spec.mitigations())
        if (m.name() == node.use->name) eps = params_of(m).number("eps");
      const double var = rms ? x.p : x.p - x.m * x.m, s2 = var + eps;
      y = {var / s2, rms ? x.m / std::sqrt(s2) : 0, (rms ? x.k : x.k - x.m * x.m) / s2, x.gaussian};
      factor[j] = 1 / s2;
      continue;
    }
    if (node.use && !node.main && x.normalised) {  // the activation after a batch norm
      if (!sphere) {
        std::optional<SphereMoments> fresh;  // computed at most once, on the first miss
        auto moments = [&] { return fresh ? *fresh : *(fresh = batch_norm_output_moments(phi, spec.batch(), 1 << 16)); };
        const std::string key = key_of(spec.network().activation(), {B});
        SphereMoments m;
        m.sq = remembered(key + "sq", [&] { return moments().sq; });
        m.mean = remembered(key + "mean", [&] { return moments().mean; });
        m.cross = remembered(key + "cross", [&] { return moments().cross; });
        sphere = m;
      }
      y = {sphere->sq, sphere->mean, sphere->cross, false, false};
      continue;  // its factor is in the norm's
    }
    if (!node.use) {  // y = x_s + alpha * x
      const Field& s = v[node.skip_from];
      if (!x.gaussian)
        return "a residual branch that ends in its activation, x + alpha phi(W x + b): gradient independence fails "
               "there (set network.activation_first for x + alpha (W phi(x) + b), which theory covers)";
      const double a = node.alpha;
      y = {s.p + a * a * x.p + 2 * a * s.m * x.m, s.m + a * x.m, s.k + a * a * x.k + 2 * a * s.m * x.m, s.gaussian};
    } else if (node.main) {  // a dense layer: h = x W + b
      const auto var = *net.init->variances(node.use->in_cols, node.use->out_cols);
      bool bias = false;
      for (std::size_t w : node.use->weights) bias |= net.weights[w].decl.role == WeightRole::bias;
      const double b2 = bias ? var.sigma_b2 : 0;
      y = {var.sigma_w2 * x.p + b2, 0, var.sigma_w2 * x.k + b2, true};
      factor[j] = var.sigma_w2;
      if (node.block == std::min<std::size_t>(1, net.block_end.size() - 1)) p.sigma_w2 = var.sigma_w2, p.sigma_b2 = b2;
    } else {  // the activation, of a centred Gaussian field
      if (!x.gaussian || x.m != 0) return "the activation reads a value that is not a centred Gaussian field";
      if (last && same(std::get<0>(*last), x)) {
        y = std::get<1>(*last), factor[j] = std::get<2>(*last);
        continue;
      }
      const double q = clamp_q(x.p);
      y.p = expect([&](double t) { const double f = phi.f(t); return f * f; }, q, phi.kinks, 1e-12);
      y.m = expect(phi.f, q, phi.kinks, 1e-12);
      y.k = pairs ? expect2(phi.f, phi.f, q, std::clamp(x.k / x.p, -1.0, 1.0), phi.kinks, 1e-10) : 0;
      factor[j] = expect([&](double t) { const double d = phi.df(t); return d * d; }, q, phi.kinks, 1e-12);
      last.emplace(x, y, factor[j]);
    }
  }
  std::vector<double> d(n + 1, 0);  // E||dL/d value||^2, relative to the network's output
  d[n] = 1;
  for (std::size_t j = n; j-- > 0;) {
    const auto& node = net.nodes[j];
    if (node.use) {
      d[j] += factor[j] * d[j + 1];
    } else {
      d[j] += node.alpha * node.alpha * d[j + 1];
      d[node.skip_from] += d[j + 1];
    }
  }
  double beta = 0;  // sum of 1/width over the blocks the gradient crosses between the ends
  for (std::size_t j = 0; j < n; ++j) {
    if (!net.nodes[j].main) continue;
    const Field& h = v[j + 1];
    p.q.push_back(h.p), p.grad_sq.push_back(d[j + 1]);
    if (pairs) p.c.push_back(std::clamp(h.k / h.p, -1.0, 1.0));
    if (net.nodes[j].block > 0) beta += 1.0 / double(net.nodes[j].use->in_cols);
  }
  p.log10_spread = std::sqrt(5 * beta) / (2 * std::log(10.0));
  p.plain = std::all_of(net.nodes.begin(), net.nodes.begin() + long(n), [&](const auto& node) {
    return node.use && (node.main || node.use->name == spec.network().activation().name());
  });
  for (std::size_t end : net.block_end) p.out_sq.push_back(v[end].p);
  p.log10_first_over_last = 0.5 * std::log10(p.grad_sq.front() / p.grad_sq.back());
  return "";
}

std::shared_ptr<const Prediction> compute(const v1::SimSpec& spec, const Registry& registry) {
  auto p = std::make_shared<Prediction>();
  const Network<double> net = build_network<double>(spec, registry);
  p->none = uncovered(spec, net);
  if (p->none.empty()) {
    const Phi phi = Phi::of(*net.activations.front()->elementwise());
    p->none = interpret(spec, net, phi, *p);
    if (p->none.empty() && p->plain) p->xi_c = analyse(phi, p->sigma_w2, p->sigma_b2, spec.input().variance()).xi_c;
  }
  if (!p->none.empty()) {  // nothing half-computed
    Prediction none;
    none.none = p->none;
    *p = std::move(none);
  }
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
  pred.set_log10_first_over_last(p.log10_first_over_last), pred.set_log10_spread(p.log10_spread);
  if (!std::isnan(p.xi_c)) pred.set_xi_c(p.xi_c);
  auto& layers = *out.mutable_layers();
  if (std::size_t(layers.size()) != p.q.size()) return;
  for (std::size_t l = 0; l < p.q.size(); ++l) {
    auto& layer = layers[int(l)];
    layer.set_predicted_q(p.q[l]), layer.set_predicted_output_sq(p.out_sq[l]);
    if (!p.c.empty()) layer.set_predicted_correlation(p.c[l]);
  }
  const double g = layers[layers.size() - 1].grad_norm();  // the anchor
  if (!(std::isfinite(g) && g > 0)) return;
  for (std::size_t l = 0; l < p.q.size(); ++l)
    layers[int(l)].set_predicted_grad_norm(g * std::sqrt(p.grad_sq[l] / p.grad_sq.back()));
}

}  // namespace gradsim::theory
